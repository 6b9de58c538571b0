package session_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
)

// TestMiddlewareFlushSavesFirst checks that a flush, through
// http.ResponseController or http.Flusher, saves the session and sends
// its cookie before the first bytes, and that a value set afterwards is
// saved and reported.
func TestMiddlewareFlushSavesFirst(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	cases := []struct {
		name  string
		flush func(w http.ResponseWriter) error
	}{
		{"ResponseController", func(w http.ResponseWriter) error { return http.NewResponseController(w).Flush() }},
		{"Flusher", func(w http.ResponseWriter) error { w.(http.Flusher).Flush(); return nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHTTPEnv(t, tg, envConfig{handler: func(e *httpEnv) http.Handler {
				mux := testApp(e)
				mux.(*http.ServeMux).HandleFunc("POST /stream", func(w http.ResponseWriter, r *http.Request) {
					s := session.FromContext(r.Context())
					s.Set("before", 1)
					if err := tc.flush(w); err != nil {
						t.Errorf("flush: %v", err)
					}
					io.WriteString(w, "streamed")
					s.Set("after", 2) // too late for the cookie, still saved
				})
				return mux
			}})
			c := e.client(t)
			e.do(t, c, "POST", "/count", url.Values{}, "")
			r := e.do(t, c, "POST", "/stream", url.Values{}, "")
			if r.body != "streamed" || len(r.setCookies()) != 0 {
				t.Fatalf("stream: %q, Set-Cookie %q", r.body, r.setCookies())
			}
			wantErrs(t, e.errs, session.ErrResponseStarted, 1)
			s, err := e.store.Load(t.Context(), e.jarToken(c))
			if err != nil || s.GetInt("before") != 1 || s.GetInt("after") != 2 || s.GetInt("n") != 1 {
				t.Fatalf("stored %v, %v", s.Values(), err)
			}

			// A new session flushed early still gets its cookie.
			c2 := e.client(t)
			r = e.do(t, c2, "POST", "/stream", url.Values{}, "")
			if r.body != "streamed" {
				t.Fatalf("new session stream: %q", r.body)
			}
			r.cookie(t)
			if !strings.Contains(r.header.Get("Cache-Control"), "Set-Cookie") {
				t.Fatalf("Cache-Control %q", r.header.Get("Cache-Control"))
			}
			// Its late value could not be saved: the row holds only the
			// first one, and the loss is reported.
			wantErrs(t, e.errs, session.ErrResponseStarted, 2)
			s, err = e.store.Load(t.Context(), e.jarToken(c2))
			if err != nil || s.GetInt("before") != 1 {
				t.Fatalf("stored %v, %v", s.Values(), err)
			}
		})
	}
}

// TestMiddlewareLateChanges checks every kind of change after the
// response started: each is reported, none silently lost.
func TestMiddlewareLateChanges(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	cases := []struct {
		name     string
		change   func(e *httpEnv, r *http.Request)
		loggedIn bool // whether the old cookie still finds the user afterwards
	}{
		{"renew", func(e *httpEnv, r *http.Request) { e.store.Renew(r.Context(), session.FromContext(r.Context())) }, false},
		{"destroy", func(e *httpEnv, r *http.Request) { e.store.Destroy(r.Context(), session.FromContext(r.Context())) }, false},
		{"set", func(e *httpEnv, r *http.Request) { session.FromContext(r.Context()).Set("late", true) }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHTTPEnv(t, tg, envConfig{handler: func(e *httpEnv) http.Handler {
				mux := testApp(e)
				mux.(*http.ServeMux).HandleFunc("POST /late", func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusAccepted)
					tc.change(e, r)
				})
				return mux
			}})
			c := e.client(t)
			e.do(t, c, "POST", "/login", url.Values{"user": {"bob"}}, "")
			r := e.do(t, c, "POST", "/late", url.Values{}, "")
			if r.status != http.StatusAccepted || len(r.setCookies()) != 0 {
				t.Fatalf("late: %d, Set-Cookie %q", r.status, r.setCookies())
			}
			wantErrs(t, e.errs, session.ErrResponseStarted, 1)
			r = e.do(t, c, "GET", "/read", nil, "")
			if got := strings.HasSuffix(r.body, "user=bob"); got != tc.loggedIn {
				t.Fatalf("after the late %s: %q", tc.name, r.body)
			}
		})
	}
}

// TestMiddlewareHijack checks that Hijack works through the wrapper,
// saves the session first, and that nothing is written after it.
func TestMiddlewareHijack(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	const raw = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nraw-ok"
	e := newHTTPEnv(t, tg, envConfig{handler: func(e *httpEnv) http.Handler {
		mux := testApp(e)
		mux.(*http.ServeMux).HandleFunc("GET /hijack", func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set("hijacked", "yes")
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			brw.WriteString(raw)
			brw.Flush()
			conn.Close()
			// Writes after Hijack fail and reach no one.
			if _, err := w.Write([]byte("more")); err == nil {
				t.Error("write after hijack succeeded")
			}
		})
		return mux
	}})
	c := e.client(t)
	e.do(t, c, "POST", "/count", url.Values{}, "")
	tok := e.jarToken(c)

	rawGet := func(cookie string) string {
		t.Helper()
		conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		req := "GET /hijack HTTP/1.1\r\nHost: x\r\n"
		if cookie != "" {
			req += "Cookie: " + cookie + "\r\n"
		}
		fmt.Fprint(conn, req+"\r\n")
		b, err := io.ReadAll(bufio.NewReader(conn))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := rawGet("visit=" + tok); got != raw {
		t.Fatalf("hijacked response %q, want exactly %q", got, raw)
	}
	s, err := e.store.Load(t.Context(), tok)
	if err != nil || s.GetString("hijacked") != "yes" || s.GetInt("n") != 1 {
		t.Fatalf("stored %v, %v", s.Values(), err)
	}
	if errs := e.errs.all(); len(errs) != 0 {
		t.Fatalf("errors %v for a session that needed no cookie", errs)
	}
	// A new session's cookie cannot go out on a hijacked connection.
	if got := rawGet(""); got != raw {
		t.Fatalf("hijacked response %q, want exactly %q", got, raw)
	}
	wantErrs(t, e.errs, session.ErrResponseStarted, 1)
}

// TestMiddlewareSaveError checks what a failed save does before the
// response started: the error handler's response replaces the handler's,
// unless the error handler writes nothing.
func TestMiddlewareSaveError(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set("big", strings.Repeat("x", 1000))
		w.Header().Set("X-Handler", "1")
		if _, err := io.WriteString(w, "handler body"); err == nil && w.Header().Get("X-Replaced") != "" {
			t.Error("write after the error handler's response succeeded")
		}
	})
	cases := []struct {
		name       string
		handler    func(http.ResponseWriter, *http.Request, error)
		wantStatus int
		wantBody   string
	}{
		{"default", nil, http.StatusInternalServerError, "Internal Server Error\n"},
		{"custom response", func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("X-Replaced", "1")
			http.Error(w, "sorry", http.StatusServiceUnavailable)
		}, http.StatusServiceUnavailable, "sorry\n"},
		{"ignore", func(http.ResponseWriter, *http.Request, error) {}, http.StatusOK, "handler body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := session.Open(t.Context(), tg.DB, tg.Dialect, session.WithTable(tg.CreateTable(t)), session.WithMaxSize(100))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			logs := &strings.Builder{}
			mw, err := session.NewMiddleware(t.Context(), st, session.MiddlewareOptions{
				ErrorHandler: tc.handler, Logger: newTextLogger(logs),
			})
			if err != nil {
				t.Fatal(err)
			}
			rec := serve(mw.Wrap(big), "POST", "/", "")
			if rec.Code != tc.wantStatus || rec.Body.String() != tc.wantBody {
				t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tc.wantStatus, tc.wantBody)
			}
			if sc := rec.Header().Values("Set-Cookie"); len(sc) != 0 {
				t.Fatalf("Set-Cookie %q after a failed save", sc)
			}
			if tc.handler == nil && (!strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "too large")) {
				t.Fatalf("default handler logged %q", logs.String())
			}
		})
	}
}

// TestMiddlewareDecodeErrors checks both decode-error policies on every
// database.
func TestMiddlewareDecodeErrors(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		corrupt := map[string]string{"postgres": "'\\xdeadbeef'::bytea", "mysql": "X'DEADBEEF'", "sqlite": "X'DEADBEEF'"}[tg.Kind]
		cases := []struct {
			policy     session.DecodePolicy
			wantStatus int
			wantBody   string
			wantNull   int // rows with NULL data afterwards
		}{
			{session.DecodeReset, http.StatusOK, "n=0 lang= user=", 1},
			{session.DecodeFail, http.StatusInternalServerError, "session error\n", 0},
		}
		for _, tc := range cases {
			t.Run(tc.policy.String(), func(t *testing.T) {
				e := newHTTPEnv(t, tg, envConfig{mw: session.MiddlewareOptions{DecodeErrors: tc.policy}})
				c := e.client(t)
				e.do(t, c, "POST", "/count", url.Values{}, "")
				if _, err := tg.DB.Exec("UPDATE " + tg.Dialect.Quote(e.tab.Name) + " SET session_data = " + corrupt); err != nil {
					t.Fatal(err)
				}
				r := e.do(t, c, "GET", "/read", nil, "")
				if r.status != tc.wantStatus || r.body != tc.wantBody {
					t.Fatalf("got %d %q", r.status, r.body)
				}
				if got := e.store.Stats().DecodeErrors; got != 1 {
					t.Fatalf("decode errors = %d, want 1", got)
				}
				if got := e.rows(t, e.tab.Data+" IS NULL"); got != tc.wantNull {
					t.Fatalf("rows with NULL data = %d, want %d", got, tc.wantNull)
				}
				if tc.policy == session.DecodeFail {
					wantErrs(t, e.errs, session.ErrCorrupt, 1)
					return
				}
				// Reset: the row was cleared, the visitor keeps the token.
				r = e.do(t, c, "POST", "/count", url.Values{}, "")
				if r.body != "n=1" || len(r.setCookies()) != 0 || e.store.Stats().DecodeErrors != 1 {
					t.Fatalf("after reset: %q, Set-Cookie %q, decode errors %d", r.body, r.setCookies(), e.store.Stats().DecodeErrors)
				}
				if errs := e.errs.all(); len(errs) != 0 {
					t.Fatalf("errors %v under reset", errs)
				}
			})
		}
	})
}

// TestMiddlewareReleasesLockOnPanic checks that a handler that panics in
// locked mode saves nothing and gives back the row lock.
func TestMiddlewareReleasesLockOnPanic(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newHTTPEnv(t, tg, envConfig{
			store: []session.Option{session.WithMode(session.Locked), session.WithLockTimeout(2 * time.Second)},
			handler: func(e *httpEnv) http.Handler {
				mux := testApp(e)
				mux.(*http.ServeMux).HandleFunc("POST /panic", func(w http.ResponseWriter, r *http.Request) {
					s := session.FromContext(r.Context())
					s.Set("n", 100)
					panic(http.ErrAbortHandler)
				})
				return mux
			},
		})
		c := e.client(t)
		e.do(t, c, "POST", "/count", url.Values{}, "")
		req, _ := http.NewRequest("POST", e.srv.URL+"/panic", nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("the panicking handler answered")
		}
		// A lock left behind would make this request time out (500).
		r := e.do(t, c, "POST", "/count", url.Values{}, "")
		if r.status != http.StatusOK || r.body != "n=2" {
			t.Fatalf("after the panic: %d %q", r.status, r.body)
		}
		if inUse := e.db.Stats().InUse; inUse != 0 {
			t.Fatalf("%d connections still in use", inUse)
		}
	})
}

// TestMiddlewareWriterPaths checks every way a handler can start the
// response, through a real server: each saves the session first and sends
// exactly one cookie.
func TestMiddlewareWriterPaths(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	cases := []struct {
		name  string
		write func(w http.ResponseWriter)
		code  int
	}{
		{"Write", func(w http.ResponseWriter) { io.WriteString(w, "body") }, http.StatusOK},
		{"WriteHeader", func(w http.ResponseWriter) { w.WriteHeader(http.StatusCreated) }, http.StatusCreated},
		{"early hints, then Write", func(w http.ResponseWriter) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "body")
		}, http.StatusOK},
		{"ReadFrom", func(w http.ResponseWriter) { io.Copy(w, io.LimitReader(strings.NewReader("body"), 4)) }, http.StatusOK},
		{"Flush", func(w http.ResponseWriter) { http.NewResponseController(w).Flush() }, http.StatusOK},
		{"nothing", func(http.ResponseWriter) {}, http.StatusOK},
		{"handler's own Vary", func(w http.ResponseWriter) {
			w.Header().Set("Vary", "Accept-Encoding, cookie")
			io.WriteString(w, "body")
		}, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHTTPEnv(t, tg, envConfig{})
			h := e.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				session.FromContext(r.Context()).Set("k", "v")
				tc.write(w)
				// Later writes and flushes must not save or set anything again.
				io.WriteString(w, "more")
				http.NewResponseController(w).Flush()
			}))
			e.srv.Config.Handler = h
			r := e.do(t, http.DefaultClient, "POST", "/", url.Values{}, "")
			if r.status != tc.code {
				t.Fatalf("status %d, want %d", r.status, tc.code)
			}
			r.cookie(t)
			vary := strings.ToLower(strings.Join(r.header.Values("Vary"), ","))
			if strings.Count(vary, "cookie") != 1 {
				t.Fatalf("Vary %q", vary)
			}
			if got := e.rows(t, ""); got != 1 || e.store.Stats().Inserts != 1 {
				t.Fatalf("rows %d, inserts %d", got, e.store.Stats().Inserts)
			}
			if errs := e.errs.all(); len(errs) != 0 {
				t.Fatalf("errors %v", errs)
			}
		})
	}
}

// TestFromContextOutsideMiddleware checks the documented answers outside
// the middleware: an empty, detached session and a new visit.
func TestFromContextOutsideMiddleware(t *testing.T) {
	s := session.FromContext(context.Background())
	if s == nil || s.Get("k") != nil || s.Token() != "" || !s.IsNew() {
		t.Fatalf("FromContext outside the middleware = %v", s)
	}
	s.Set("k", 1)
	if s.GetInt("k") != 1 {
		t.Fatal("the detached session does not keep values")
	}
	if v := session.CurrentVisit(context.Background()); !v.IsNew || !v.Created.IsZero() {
		t.Fatalf("CurrentVisit outside the middleware = %+v", v)
	}
}
