package session_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
)

// BenchmarkMiddleware measures whole requests through the middleware, in
// process: one that never touches the session (no statement), a read-only
// one (one load) and a write (load and update), per database, plus the
// same untouched request without the middleware as the baseline.
func BenchmarkMiddleware(b *testing.B) {
	for _, kind := range testdb.Kinds {
		b.Run(kind, func(b *testing.B) {
			tg := testdb.Get(b, kind)
			st, err := session.Open(context.Background(), tg.DB, tg.Dialect, session.WithTable(tg.CreateTable(b)))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			mw, err := session.NewMiddleware(context.Background(), st, session.MiddlewareOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { mw.Close() })
			mux := http.NewServeMux()
			mux.HandleFunc("GET /static", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
			mux.HandleFunc("GET /read", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, session.FromContext(r.Context()).GetInt("n"))
			})
			mux.HandleFunc("POST /write", func(w http.ResponseWriter, r *http.Request) {
				s := session.FromContext(r.Context())
				s.Set("n", s.GetInt("n")+1)
				w.Write([]byte("ok"))
			})
			h := mw.Wrap(mux)
			rec := serve(h, "POST", "/write", "")
			ck, err := http.ParseSetCookie(rec.Header().Get("Set-Cookie"))
			if err != nil {
				b.Fatal(err)
			}
			cookie := ck.Name + "=" + ck.Value
			b.Run("no-middleware", func(b *testing.B) {
				req := httptest.NewRequest("GET", "/static", nil)
				req.Header.Set("Cookie", cookie)
				b.ReportAllocs()
				for b.Loop() {
					mux.ServeHTTP(httptest.NewRecorder(), req)
				}
			})
			for _, bc := range []struct{ name, method, path string }{
				{"untouched", "GET", "/static"},
				{"read", "GET", "/read"},
				{"write", "POST", "/write"},
			} {
				b.Run(bc.name, func(b *testing.B) {
					req := httptest.NewRequest(bc.method, bc.path, nil)
					req.Header.Set("Cookie", cookie)
					b.ReportAllocs()
					for b.Loop() {
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, req)
						if rec.Code != http.StatusOK {
							b.Fatalf("status %d", rec.Code)
						}
					}
				})
			}
		})
	}
}

// TestMiddlewareStressConcurrentVisitor runs many concurrent requests of
// one visitor through a real server on every database: in locked mode no
// increment of a counter is lost; in merge mode changes to different keys
// all survive. Set VISITSESSION_STRESS=1 to run it.
func TestMiddlewareStressConcurrentVisitor(t *testing.T) {
	if os.Getenv("VISITSESSION_STRESS") != "1" {
		t.Skip("set VISITSESSION_STRESS=1 to run the stress tests")
	}
	const workers, perWorker = 8, 25
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		cases := []struct {
			name string
			mode session.Mode
		}{
			{"locked counter", session.Locked},
			{"merge disjoint keys", session.Merge},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				e := newHTTPEnv(t, tg, envConfig{
					store: []session.Option{session.WithMode(tc.mode), session.WithLockTimeout(30 * time.Second), session.WithMaxAttempts(100)},
					handler: func(e *httpEnv) http.Handler {
						mux := testApp(e)
						mux.(*http.ServeMux).HandleFunc("POST /own", func(w http.ResponseWriter, r *http.Request) {
							s := session.FromContext(r.Context())
							k := "w" + r.FormValue("w")
							s.Set(k, s.GetInt(k)+1)
						})
						return mux
					},
				})
				c := e.client(t)
				e.do(t, c, "POST", "/count", nil, "")
				cookie := "visit=" + e.jarToken(c)
				var wg sync.WaitGroup
				for w := range workers {
					wg.Go(func() {
						for range perWorker {
							path := "/count"
							if tc.mode == session.Merge {
								path = fmt.Sprintf("/own?w=%d", w)
							}
							req, _ := http.NewRequest("POST", e.srv.URL+path, nil)
							req.Header.Set("Cookie", cookie)
							resp, err := http.DefaultClient.Do(req)
							if err != nil {
								t.Error(err)
								return
							}
							resp.Body.Close()
							if resp.StatusCode != http.StatusOK {
								t.Errorf("status %d", resp.StatusCode)
								return
							}
						}
					})
				}
				wg.Wait()
				s, err := e.store.Load(t.Context(), e.jarToken(c))
				if err != nil {
					t.Fatal(err)
				}
				e.store.Release(t.Context(), s)
				if tc.mode == session.Locked {
					if got := s.GetInt("n"); got != 1+workers*perWorker {
						t.Fatalf("counter = %d, want %d", got, 1+workers*perWorker)
					}
					return
				}
				for w := range workers {
					// Each worker's requests run one after another, so its own
					// key counts every one of them.
					if got := s.GetInt(fmt.Sprintf("w%d", w)); got != perWorker {
						t.Fatalf("worker %d's key = %d, want %d: %v", w, got, perWorker, s.Values())
					}
				}
				if got := s.GetInt("n"); got != 1 {
					t.Fatalf("counter = %d, want 1", got)
				}
				if errs := e.errs.all(); len(errs) != 0 {
					t.Fatalf("errors: %v", errs[0])
				}
			})
		}
	})
}
