package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// newDemoServer serves the demo app on a fresh table of tg.
func newDemoServer(t *testing.T, tg *testdb.Target) *httptest.Server {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	store, err := session.Open(t.Context(), tg.DB, tg.Dialect, session.WithTable(tg.CreateTable(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	mw, err := session.NewMiddleware(context.Background(), store, session.MiddlewareOptions{
		Cookie: session.CookieOptions{Insecure: true}, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mw.Close() })
	srv := httptest.NewServer(mw.Wrap(newDemoApp(store, tg.Kind, logger)))
	t.Cleanup(srv.Close)
	return srv
}

// demoBrowser is a cookie-jar client of the demo: follow follows
// redirects as a browser does, noFollow returns the redirect itself.
type demoBrowser struct {
	t                *testing.T
	base             string
	jar              *cookiejar.Jar
	follow, noFollow *http.Client
}

func newDemoBrowser(t *testing.T, base string) *demoBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &demoBrowser{
		t: t, base: base, jar: jar,
		follow: &http.Client{Jar: jar},
		noFollow: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
}

func (b *demoBrowser) send(c *http.Client, method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var resp *http.Response
	var err error
	if method == "POST" {
		resp, err = c.PostForm(b.base+path, form)
	} else {
		resp, err = c.Get(b.base + path)
	}
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, string(body)
}

// token returns the session token in the jar, or "".
func (b *demoBrowser) token() string {
	u, _ := url.Parse(b.base)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == session.DefaultCookieName {
			return c.Value
		}
	}
	return ""
}

// state returns the demo's /state for the jar's cookie, or for a raw
// cookie header when cookie is not empty.
func (b *demoBrowser) state(cookie string) string {
	b.t.Helper()
	if cookie == "" {
		_, body := b.send(b.follow, "GET", "/state", nil)
		return body
	}
	req, _ := http.NewRequest("GET", b.base+"/state", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func wantState(t *testing.T, got string, visits, lang, user, fp string) {
	t.Helper()
	want := "visits=" + visits + "\nlang=" + lang + "\nuser=" + user + "\nsession=" + fp + "\n"
	if got != want {
		t.Fatalf("state = %q, want %q", got, want)
	}
}

func fp(token string) string {
	if token == "" {
		return ""
	}
	return visit.HashToken(token)[:6]
}

var visitsRE = regexp.MustCompile(`id="visits">(\d+)<`)

// TestDemoEndToEnd drives the demo with a cookie jar on every database:
// the counter counts, the language persists, login renews the key (the
// old cookie stops working) and logout expires the cookie.
func TestDemoEndToEnd(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		srv := newDemoServer(t, tg)
		b := newDemoBrowser(t, srv.URL)

		for want := 1; want <= 2; want++ {
			resp, body := b.send(b.follow, "GET", "/", nil)
			m := visitsRE.FindStringSubmatch(body)
			if resp.StatusCode != 200 || m == nil || m[1] != strconv.Itoa(want) {
				t.Fatalf("visit %d: %d, counter %v", want, resp.StatusCode, m)
			}
			if tok := b.token(); tok == "" || strings.Contains(body, tok) {
				t.Fatal("no cookie, or the page shows the token")
			}
			if !strings.Contains(body, `id="session">`+fp(b.token())+`<`) {
				t.Fatalf("page lacks the session fingerprint %s", fp(b.token()))
			}
		}
		wantState(t, b.state(""), "2", "en", "", fp(b.token()))

		// The language persists (the redirect's page view counts).
		if resp, body := b.send(b.follow, "POST", "/language", url.Values{"lang": {"de"}}); resp.StatusCode != 200 || !strings.Contains(body, "Hallo!") {
			t.Fatalf("language: %d, greeting missing", resp.StatusCode)
		}
		wantState(t, b.state(""), "3", "de", "", fp(b.token()))
		if resp, _ := b.send(b.noFollow, "POST", "/language", url.Values{"lang": {"xx"}}); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("unknown language: %d", resp.StatusCode)
		}

		// Login renews the key and keeps the data.
		before := b.token()
		resp, _ := b.send(b.noFollow, "POST", "/login", url.Values{"name": {"alice"}})
		if resp.StatusCode != http.StatusSeeOther || len(resp.Header.Values("Set-Cookie")) != 1 {
			t.Fatalf("login: %d, Set-Cookie %q", resp.StatusCode, resp.Header.Values("Set-Cookie"))
		}
		after := b.token()
		if after == "" || after == before {
			t.Fatal("login did not renew the token")
		}
		wantState(t, b.state(""), "3", "de", "alice", fp(after))
		wantState(t, b.state("visit="+before), "0", "en", "", "")
		if _, body := b.send(b.follow, "GET", "/", nil); !strings.Contains(body, "Hallo, alice!") || !strings.Contains(body, "Logged in") {
			t.Fatal("page after login lacks the greeting or the notice")
		}
		if resp, _ := b.send(b.noFollow, "POST", "/login", url.Values{"name": {" "}}); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("empty name: %d", resp.StatusCode)
		}

		// Logout expires the cookie and ends the session.
		resp, _ = b.send(b.noFollow, "POST", "/logout", nil)
		sc := resp.Header.Values("Set-Cookie")
		if resp.StatusCode != http.StatusSeeOther || len(sc) != 1 || !strings.Contains(sc[0], "Max-Age=0") {
			t.Fatalf("logout: %d, Set-Cookie %q", resp.StatusCode, sc)
		}
		if b.token() != "" {
			t.Fatal("the jar kept the cookie after logout")
		}
		wantState(t, b.state(""), "0", "en", "", "")
		wantState(t, b.state("visit="+after), "0", "en", "", "")
	})
}

// syncBuffer is an io.Writer safe for a server goroutine and a test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listeningRE = regexp.MustCompile(`listening on (http://[^/ ]+/)`)

// startDemo runs the demo command with args until the returned stop is
// called; it returns the demo's URL.
func startDemo(t *testing.T, args ...string) (base string, stop func() (code int, stdout, stderr string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- runDemo(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), &stdout, &stderr) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("demo exited with %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("demo did not start: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := false
	stop = func() (int, string, string) {
		stopped = true
		cancel()
		return <-done, stdout.String(), stderr.String()
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return strings.TrimSuffix(base, "/"), stop
}

// TestDemoCommand runs the command itself on its default SQLite file,
// serves a page and stops it with its context, as SIGINT does.
func TestDemoCommand(t *testing.T) {
	t.Chdir(t.TempDir())
	base, stop := startDemo(t)
	b := newDemoBrowser(t, base)
	b.send(b.follow, "GET", "/", nil)
	wantState(t, b.state(""), "1", "en", "", fp(b.token()))
	code, stdout, stderr := stop()
	if code != 0 || !strings.Contains(stdout, "stopped") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(demoDBFile); err != nil {
		t.Fatalf("database file: %v", err)
	}
	// A second run finds the table and the visitor's session again.
	base, stop = startDemo(t)
	b.base = base
	wantState(t, b.state(""), "1", "en", "", fp(b.token()))
	if code, _, stderr := stop(); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
}

func TestDemoCommandRejectsBadFlags(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"extra argument", []string{"now"}, "unexpected argument"},
		{"server without dsn", []string{"--driver", "postgres"}, "--dsn is required"},
		{"unknown driver", []string{"--driver", "oracle"}, "unknown --driver"},
		{"bad table", []string{"--table", "visit;drop"}, "invalid identifier"},
		{"unknown flag", []string{"--port", "80"}, "flag provided but not defined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			code := runDemo(t.Context(), tc.args, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}
