package session_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// TestMiddlewareEndToEnd drives the middleware through a real server and a
// cookie jar on every database: counter, language, login with a renewed
// token, logout with an expired cookie, and the statements each request
// runs.
func TestMiddlewareEndToEnd(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newHTTPEnv(t, tg, envConfig{})
		c := e.client(t)

		step := func(name string, method, path string, form url.Values, wantBody string, maxStmts int64) result {
			t.Helper()
			r := e.do(t, c, method, path, form, "")
			if r.status != http.StatusOK || r.body != wantBody {
				t.Fatalf("%s: %d %q, want 200 %q", name, r.status, r.body, wantBody)
			}
			if r.stmts > maxStmts {
				t.Fatalf("%s: %d statements, want at most %d", name, r.stmts, maxStmts)
			}
			return r
		}
		noCookie := func(name string, r result) {
			t.Helper()
			if sc := r.setCookies(); len(sc) != 0 {
				t.Fatalf("%s: unexpected Set-Cookie %q", name, sc)
			}
		}

		r := step("static, no cookie", "GET", "/static", nil, "static", 0)
		noCookie("static", r)
		if v := r.header.Get("Vary"); v != "" {
			t.Fatalf("static: Vary %q on a request that did not use the session", v)
		}
		r = step("read, no cookie", "GET", "/read", nil, "n=0 lang= user=", 0)
		noCookie("read without cookie", r)
		if v := r.header.Get("Vary"); v != "Cookie" {
			t.Fatalf("read: Vary = %q, want Cookie", v)
		}

		// The first write inserts the row and sets the one cookie.
		r = step("count 1", "POST", "/count", url.Values{}, "n=1", 1)
		ck := r.cookie(t)
		if !ck.HttpOnly || ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.MaxAge != 3600 {
			t.Fatalf("cookie attributes: %+v", ck)
		}
		if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, `no-cache="Set-Cookie"`) {
			t.Fatalf("Cache-Control = %q", cc)
		}
		tok1 := e.jarToken(c)
		if _, err := visit.ParseToken(tok1); err != nil {
			t.Fatalf("jar token %q: %v", tok1, err)
		}

		r = step("count 2", "POST", "/count", url.Values{}, "n=2", 2)
		noCookie("count 2", r)
		r = step("static with cookie", "GET", "/static", nil, "static", 0)
		if r.stmts != 0 {
			t.Fatalf("static with cookie ran %d statements", r.stmts)
		}
		r = step("read", "GET", "/read", nil, "n=2 lang= user=", 1)
		if r.stmts != 1 {
			t.Fatalf("read ran %d statements, want exactly 1", r.stmts)
		}
		noCookie("read", r)

		step("language", "POST", "/lang", url.Values{"lang": {"de"}}, "ok", 2)
		step("language persists", "GET", "/read", nil, "n=2 lang=de user=", 1)

		// Login renews the token and keeps the data; the old token is dead.
		r = step("login", "POST", "/login", url.Values{"user": {"alice"}}, "ok", 2)
		ck = r.cookie(t)
		tok2 := e.jarToken(c)
		if ck.Value != tok2 || tok2 == tok1 {
			t.Fatalf("login: token not renewed (old %q, cookie %q, jar %q)", tok1[:4], ck.Value[:4], tok2[:4])
		}
		step("after login", "GET", "/read", nil, "n=2 lang=de user=alice", 1)
		old := e.do(t, http.DefaultClient, "GET", "/read", nil, "visit="+tok1)
		if old.body != "n=0 lang= user=" || len(old.setCookies()) != 0 {
			t.Fatalf("old token after login: %q %q", old.body, old.setCookies())
		}

		// Logout ends the session and expires the cookie.
		r = step("logout", "POST", "/logout", url.Values{}, "ok", 2)
		ck = r.cookie(t)
		if ck.Value != "" || ck.MaxAge >= 0 {
			t.Fatalf("logout cookie %+v, want an expired one", ck)
		}
		if !strings.Contains(r.setCookies()[0], "Max-Age=0") {
			t.Fatalf("logout Set-Cookie %q lacks Max-Age=0", r.setCookies()[0])
		}
		if tok := e.jarToken(c); tok != "" {
			t.Fatal("jar still holds the session cookie after logout")
		}
		r = step("after logout", "GET", "/read", nil, "n=0 lang= user=", 0)
		noCookie("after logout", r)
		after := e.do(t, http.DefaultClient, "GET", "/read", nil, "visit="+tok2)
		if after.body != "n=0 lang= user=" {
			t.Fatalf("token after logout still works: %q", after.body)
		}
		if got := e.rows(t, ""); got != 1 {
			t.Fatalf("rows = %d, want the one visit kept as history", got)
		}
		if errs := e.errs.all(); len(errs) != 0 {
			t.Fatalf("error handler got %v", errs)
		}
	})
}

// TestMiddlewareTouchesOncePerInterval checks that read-only requests
// write the expiry at most once per touch interval, and that a persistent
// cookie follows the moved expiry.
func TestMiddlewareTouchesOncePerInterval(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newHTTPEnv(t, tg, envConfig{})
		c := e.client(t)
		e.do(t, c, "POST", "/count", url.Values{}, "")
		steps := []struct {
			advance   time.Duration
			wantStmts int64
			cookie    bool
		}{
			{0, 1, false},
			{5 * time.Minute, 1, false},  // expiry would move 5m: under the interval
			{6 * time.Minute, 2, true},   // 11m: load and touch, cookie follows
			{0, 1, false},                // touched: nothing to do
			{9 * time.Minute, 1, false},  // 9m since the touch
			{2 * time.Minute, 2, true},   // 11m since the touch
			{59 * time.Minute, 2, true},  // still alive, touched again
			{61 * time.Minute, 1, false}, // expired: a miss, no cookie
		}
		for i, s := range steps {
			e.clk.Add(s.advance)
			r := e.do(t, c, "GET", "/read", nil, "")
			if r.stmts != s.wantStmts {
				t.Fatalf("step %d: %d statements, want %d", i, r.stmts, s.wantStmts)
			}
			if got := len(r.setCookies()) == 1; got != s.cookie {
				t.Fatalf("step %d: Set-Cookie %q, want cookie %v", i, r.setCookies(), s.cookie)
			}
			if s.cookie {
				if ck := r.cookie(t); ck.MaxAge != 3600 {
					t.Fatalf("step %d: Max-Age %d, want 3600", i, ck.MaxAge)
				}
			}
		}
		if got := e.store.Stats().Touches; got != 3 {
			t.Fatalf("touches = %d, want 3", got)
		}
	})
}

// TestMiddlewareNeverAdoptsCookie checks that malformed and unknown
// cookies are never adopted: the visitor gets a fresh token.
func TestMiddlewareNeverAdoptsCookie(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		cases := []struct {
			name       string
			value      string
			readStmts  int64 // a read with this cookie
			writeStmts int64 // a write with this cookie
		}{
			{"malformed", "not-a-token", 0, 1},
			{"too long", strings.Repeat("A", visit.TokenLength+1), 0, 1},
			{"bad alphabet", strings.Repeat("A", visit.TokenLength-1) + "%", 0, 1},
			{"unknown", visit.NewToken(), 1, 2},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				e := newHTTPEnv(t, tg, envConfig{})
				cookie := "visit=" + tc.value
				r := e.do(t, http.DefaultClient, "GET", "/read", nil, cookie)
				if r.body != "n=0 lang= user=" || r.stmts != tc.readStmts || len(r.setCookies()) != 0 {
					t.Fatalf("read: %q, %d statements, Set-Cookie %q", r.body, r.stmts, r.setCookies())
				}
				r = e.do(t, http.DefaultClient, "POST", "/count", url.Values{}, cookie)
				if r.body != "n=1" || r.stmts != tc.writeStmts {
					t.Fatalf("write: %q, %d statements", r.body, r.stmts)
				}
				if ck := r.cookie(t); ck.Value == tc.value {
					t.Fatal("the incoming token was adopted")
				} else if _, err := visit.ParseToken(ck.Value); err != nil {
					t.Fatalf("fresh token %q: %v", ck.Value, err)
				}
				if got := e.rows(t, ""); got != 1 {
					t.Fatalf("rows = %d, want 1", got)
				}
			})
		}
	})
}

// TestMiddlewareWithServeMux checks the middleware around a ServeMux and
// inside one, around a single pattern with a wildcard.
func TestMiddlewareWithServeMux(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	item := func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Set("last", r.PathValue("id"))
		w.Write([]byte("item " + r.PathValue("id") + " pattern " + r.Pattern))
	}
	cases := []struct {
		name    string
		handler func(e *httpEnv) http.Handler // wrapped by the env's middleware
		inner   bool                          // wrap the route, not the mux
	}{
		{name: "around the mux", handler: func(e *httpEnv) http.Handler {
			mux := http.NewServeMux()
			mux.HandleFunc("GET /items/{id}", item)
			return mux
		}},
		{name: "around one route", inner: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e *httpEnv
			if tc.inner {
				e = newHTTPEnv(t, tg, envConfig{handler: func(e *httpEnv) http.Handler { return http.NotFoundHandler() }})
				mux := http.NewServeMux()
				mux.Handle("GET /items/{id}", e.mw.Wrap(http.HandlerFunc(item)))
				e.srv.Config.Handler = mux
			} else {
				e = newHTTPEnv(t, tg, envConfig{handler: tc.handler})
			}
			c := e.client(t)
			r := e.do(t, c, "GET", "/items/42", nil, "")
			if r.status != http.StatusOK || r.body != "item 42 pattern GET /items/{id}" {
				t.Fatalf("got %d %q", r.status, r.body)
			}
			r.cookie(t)
			s, err := e.store.Load(t.Context(), e.jarToken(c))
			if err != nil || s.GetString("last") != "42" {
				t.Fatalf("stored %v, %v", s.Values(), err)
			}
		})
	}
}

type outerKey struct{}

// TestMiddlewareRequestContext: the request context the handler gets keeps
// the values and the cancellation of the incoming one, and contexts the
// handler derives from it still reach the request's session.
func TestMiddlewareRequestContext(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	st := open(t, tg, tg.CreateTable(t))
	mw, err := session.NewMiddleware(t.Context(), st, session.MiddlewareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), outerKey{}, "outer"))
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if ctx.Value(outerKey{}) != "outer" {
			t.Error("the incoming context's value is lost")
		}
		derived, stop := context.WithTimeout(context.WithValue(ctx, outerKey{}, "inner"), time.Minute)
		defer stop()
		if session.FromContext(derived) != session.FromContext(ctx) {
			t.Error("a derived context reaches another session")
		}
		session.FromContext(derived).Set("k", "v")
		cancel()
		select {
		case <-derived.Done():
		case <-time.After(10 * time.Second):
			t.Error("cancelling the incoming context does not reach a derived one")
		}
		if !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(context.Cause(derived), context.Canceled) {
			t.Errorf("Err = %v, Cause = %v; want context.Canceled", ctx.Err(), context.Cause(derived))
		}
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(parent))
	if session.FromContext(parent).Get("k") != nil {
		t.Error("the incoming context reaches the request's session")
	}
}
