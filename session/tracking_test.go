package session_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
)

// TestTrackingLazyLeavesTableEmpty sends 10,000 cookie-less requests that
// read the session and the visit: no statement, no row, no cookie.
func TestTrackingLazyLeavesTableEmpty(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newHTTPEnv(t, tg, envConfig{})
		h := e.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			v := session.CurrentVisit(r.Context())
			if s.GetString("lang") != "" || !v.IsNew || !v.Created.IsZero() {
				t.Errorf("cookie-less visitor: lang %q, visit %+v", s.GetString("lang"), v)
			}
			w.Write([]byte("hello"))
		}))
		before := e.n.statements()
		req := httptest.NewRequest("GET", "/", nil)
		for i := range 10_000 {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || len(rec.Header().Values("Set-Cookie")) != 0 {
				t.Fatalf("request %d: %d, Set-Cookie %q", i, rec.Code, rec.Header().Values("Set-Cookie"))
			}
		}
		if got := e.n.statements() - before; got != 0 {
			t.Fatalf("10,000 cookie-less requests ran %d statements", got)
		}
		if got := e.rows(t, ""); got != 0 {
			t.Fatalf("10,000 cookie-less requests left %d rows", got)
		}
	})
}

// TestTrackingAll checks TrackAll: every new visitor gets a row with no
// data and a cookie, even from a handler that never touches the session;
// a returning visitor is recognized.
func TestTrackingAll(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newHTTPEnv(t, tg, envConfig{mw: session.MiddlewareOptions{TrackAll: true}})
		const visitors = 3
		for i := range visitors {
			c := e.client(t)
			r := e.do(t, c, "GET", "/static", nil, "")
			if r.body != "static" || r.stmts != 1 || r.header.Get("Vary") != "Cookie" {
				t.Fatalf("visitor %d first request: %q, %d statements, Vary %q", i, r.body, r.stmts, r.header.Get("Vary"))
			}
			ck := r.cookie(t)
			if ck.MaxAge != 3600 {
				t.Fatalf("visitor %d cookie %+v", i, ck)
			}
			r = e.do(t, c, "GET", "/visit", nil, "")
			if r.body != "new=false created=true" || r.stmts != 1 || len(r.setCookies()) != 0 {
				t.Fatalf("visitor %d returning: %q, %d statements, Set-Cookie %q", i, r.body, r.stmts, r.setCookies())
			}
		}
		c := e.client(t)
		if r := e.do(t, c, "GET", "/visit", nil, ""); r.body != "new=true created=false" {
			t.Fatalf("first request of a new visitor: %q", r.body)
		}
		if got := e.rows(t, e.tab.Data+" IS NULL"); got != visitors+1 {
			t.Fatalf("rows with no data = %d, want %d", got, visitors+1)
		}
		// A visitor who logs out gets a fresh visit on the next request.
		e.do(t, c, "POST", "/logout", url.Values{}, "")
		if r := e.do(t, c, "GET", "/visit", nil, ""); r.body != "new=true created=false" || len(r.setCookies()) != 1 {
			t.Fatalf("after logout: %q, Set-Cookie %q", r.body, r.setCookies())
		}
		if got := e.rows(t, ""); got != visitors+2 {
			t.Fatalf("rows = %d, want %d", got, visitors+2)
		}
	})
}

// TestTrackingBatchedTouches checks that with TouchBatch, read-only
// requests run only their load, and that Close writes each queued session's
// touch once.
func TestTrackingBatchedTouches(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newHTTPEnv(t, tg, envConfig{mw: session.MiddlewareOptions{TouchBatch: time.Hour}})
		clients := []*http.Client{e.client(t), e.client(t)}
		for _, c := range clients {
			e.do(t, c, "POST", "/count", url.Values{}, "")
		}
		e.clk.Add(11 * time.Minute)
		for i := range 3 {
			for _, c := range clients {
				r := e.do(t, c, "GET", "/read", nil, "")
				if r.body != "n=1 lang= user=" || r.stmts != 1 {
					t.Fatalf("read %d: %q, %d statements", i, r.body, r.stmts)
				}
				if ck := r.cookie(t); ck.MaxAge != 3600 {
					t.Fatalf("read %d: cookie %+v, want the touched expiry", i, ck)
				}
			}
		}
		if got := e.store.Stats().Touches; got != 0 {
			t.Fatalf("touches before the flush = %d", got)
		}
		before := e.n.statements()
		e.mw.Close()
		if got := e.store.Stats().Touches; got != 2 {
			t.Fatalf("touches after Close = %d, want one per session", got)
		}
		if got := e.n.statements() - before; got != 2 {
			t.Fatalf("flush ran %d statements, want 2", got)
		}
		want := e.tg.Dialect.EncodeTime(e.clk.Now().Add(time.Hour))
		var n int
		q := "SELECT count(*) FROM " + tg.Dialect.Quote(e.tab.Name) + " WHERE " + tg.Dialect.Quote(e.tab.Expiry) + " = " + placeholder(tg)
		if err := tg.DB.QueryRow(q, want).Scan(&n); err != nil || n != 2 {
			t.Fatalf("rows with the touched expiry = %d, %v; want 2", n, err)
		}
		// After Close, touches are written by the request again.
		e.clk.Add(11 * time.Minute)
		if r := e.do(t, clients[0], "GET", "/read", nil, ""); r.stmts != 2 {
			t.Fatalf("read after Close: %d statements, want load and touch", r.stmts)
		}
	})
}

func placeholder(tg *testdb.Target) string {
	if tg.Kind == "postgres" {
		return "$1"
	}
	return "?"
}

// TestTrackingBatchFlusher checks the background flusher: it writes on its
// tick, and when its context ends it flushes what is queued and stops.
func TestTrackingBatchFlusher(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	cases := []struct {
		name  string
		every time.Duration
		stop  func(cancel context.CancelFunc, mw *session.Middleware)
	}{
		{"tick", 5 * time.Millisecond, nil},
		{"cancel", time.Hour, func(cancel context.CancelFunc, _ *session.Middleware) { cancel() }},
		{"close", time.Hour, func(_ context.CancelFunc, mw *session.Middleware) { mw.Close() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newMWClock()
			st, err := session.Open(t.Context(), tg.DB, tg.Dialect, session.WithTable(tg.CreateTable(t)),
				session.WithClock(clk.Now), session.WithIdleTimeout(time.Hour), session.WithTouchInterval(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			mw, err := session.NewMiddleware(ctx, st, session.MiddlewareOptions{TouchBatch: tc.every, Logger: discardLogger()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mw.Close() })
			h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := session.FromContext(r.Context())
				if r.Method == "POST" {
					s.Set("k", 1)
				}
				fmt.Fprint(w, s.GetInt("k"))
			}))
			rec := serve(h, "POST", "/", "")
			ck, err := http.ParseSetCookie(rec.Header().Get("Set-Cookie"))
			if err != nil {
				t.Fatal(err)
			}
			cookie := ck.Name + "=" + ck.Value
			clk.Add(2 * time.Minute)
			if rec = serve(h, "GET", "/", cookie); rec.Body.String() != "1" {
				t.Fatalf("read: %q", rec.Body.String())
			}
			if tc.stop != nil {
				tc.stop(cancel, mw)
			}
			deadline := time.Now().Add(10 * time.Second)
			for st.Stats().Touches != 1 {
				if time.Now().After(deadline) {
					t.Fatal("the queued touch was never written")
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
}
