package session_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// mwClock is a settable clock for the middleware tests.
type mwClock struct {
	mu sync.Mutex
	t  time.Time
}

func newMWClock() *mwClock { return &mwClock{t: time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)} }

func (c *mwClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *mwClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// errLog records what reaches the middleware's error handler.
type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// httpEnv is one middleware under test: a fresh table, a pool that counts
// statements, a store on a settable clock and a real HTTP server.
type httpEnv struct {
	tg    *testdb.Target
	tab   visit.Table
	db    *sql.DB
	n     *stmtCounter
	clk   *mwClock
	store *session.Store
	mw    *session.Middleware
	srv   *httptest.Server
	errs  *errLog
}

// envConfig varies an httpEnv. The store gets a one-hour idle timeout and
// a ten-minute touch interval, then the options in store.
type envConfig struct {
	store   []session.Option
	mw      session.MiddlewareOptions
	handler func(e *httpEnv) http.Handler // default: testApp
	tls     bool
	secure  bool // keep the Secure attribute (tests over TLS)
}

func newHTTPEnv(t *testing.T, tg *testdb.Target, cfg envConfig) *httpEnv {
	t.Helper()
	e := &httpEnv{tg: tg, clk: newMWClock(), errs: &errLog{}}
	e.tab = tg.CreateTable(t)
	e.db, e.n = openCounting(t, tg)
	opts := append([]session.Option{
		session.WithTable(e.tab), session.WithClock(e.clk.Now),
		session.WithIdleTimeout(time.Hour), session.WithTouchInterval(10 * time.Minute),
	}, cfg.store...)
	st, err := session.Open(context.Background(), e.db, tg.Dialect, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	mo := cfg.mw
	if !cfg.secure {
		mo.Cookie.Insecure = true
	}
	if mo.ErrorHandler == nil {
		mo.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			e.errs.add(err)
			http.Error(w, "session error", http.StatusInternalServerError)
		}
	}
	if mo.Logger == nil {
		mo.Logger = discardLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	mw, err := session.NewMiddleware(ctx, st, mo)
	if err != nil {
		cancel()
		t.Fatalf("NewMiddleware: %v", err)
	}
	t.Cleanup(func() { mw.Close(); cancel() })
	e.mw = mw
	h := testApp
	if cfg.handler != nil {
		h = cfg.handler
	}
	if cfg.tls {
		e.srv = httptest.NewTLSServer(mw.Wrap(h(e)))
	} else {
		e.srv = httptest.NewServer(mw.Wrap(h(e)))
	}
	t.Cleanup(e.srv.Close)
	return e
}

// testApp is a small application over the session.
func testApp(e *httpEnv) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "static")
	})
	mux.HandleFunc("GET /read", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		fmt.Fprintf(w, "n=%d lang=%s user=%s", s.GetInt("n"), s.GetString("lang"), s.GetString("user"))
	})
	mux.HandleFunc("POST /count", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n := s.GetInt("n") + 1
		s.Set("n", n)
		fmt.Fprintf(w, "n=%d", n)
	})
	mux.HandleFunc("POST /lang", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set("lang", r.FormValue("lang"))
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Set("user", r.FormValue("user"))
		if err := e.store.Renew(r.Context(), s); err != nil {
			http.Error(w, "renew failed", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := e.store.Destroy(r.Context(), session.FromContext(r.Context())); err != nil {
			http.Error(w, "destroy failed", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /visit", func(w http.ResponseWriter, r *http.Request) {
		v := session.CurrentVisit(r.Context())
		fmt.Fprintf(w, "new=%v created=%v", v.IsNew, !v.Created.IsZero())
	})
	return mux
}

// client returns a client with a cookie jar that does not follow
// redirects, so that each call is one request.
func (e *httpEnv) client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *e.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// result is one response, with the statements the request ran.
type result struct {
	status int
	body   string
	header http.Header
	stmts  int64
}

// setCookies returns the response's Set-Cookie lines.
func (r result) setCookies() []string { return r.header.Values("Set-Cookie") }

// cookie returns the single session cookie the response set, failing the
// test unless there is exactly one.
func (r result) cookie(t *testing.T) *http.Cookie {
	t.Helper()
	lines := r.setCookies()
	if len(lines) != 1 {
		t.Fatalf("Set-Cookie lines = %q, want exactly one", lines)
	}
	c, err := http.ParseSetCookie(lines[0])
	if err != nil {
		t.Fatalf("parse Set-Cookie %q: %v", lines[0], err)
	}
	return c
}

// do sends one request and counts the statements it ran. form, when not
// nil, is sent as a POST body; cookie, when not empty, replaces the jar's
// cookies by a raw Cookie header.
func (e *httpEnv) do(t *testing.T, c *http.Client, method, path string, form url.Values, cookie string) result {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	before := e.n.statements()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return result{status: resp.StatusCode, body: string(b), header: resp.Header, stmts: e.n.statements() - before}
}

// jarToken returns the session token the jar holds for the server, or "".
func (e *httpEnv) jarToken(c *http.Client) string {
	u, _ := url.Parse(e.srv.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == session.DefaultCookieName {
			return ck.Value
		}
	}
	return ""
}

// rows counts the rows of the env's table.
func (e *httpEnv) rows(t *testing.T, where string) int {
	t.Helper()
	q := "SELECT count(*) FROM " + e.tg.Dialect.Quote(e.tab.Name)
	if where != "" {
		q += " WHERE " + where
	}
	var n int
	if err := e.tg.DB.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// serve runs one request in process, without a server.
func serve(h http.Handler, method, target, cookie string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func wantErrs(t *testing.T, l *errLog, target error, n int) {
	t.Helper()
	errs := l.all()
	if len(errs) != n {
		t.Fatalf("error handler got %d errors %v, want %d", len(errs), errs, n)
	}
	for _, err := range errs {
		if !errors.Is(err, target) {
			t.Fatalf("error handler got %v, want %v", err, target)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
