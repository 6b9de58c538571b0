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
	"github.com/visitsession/visitsession/visit"
)

// BenchmarkMiddleware measures whole requests through the middleware, in
// process: one that never touches the session (no statement), a read-only
// one (one load) and a write (load and update), per database. Each is
// measured beside its limit: the same request served without the
// middleware plus the bare statements it needs (none; a SELECT by primary
// key; that SELECT and a single-row UPDATE), through the same driver and
// pool.
func BenchmarkMiddleware(b *testing.B) {
	for _, kind := range testdb.Kinds {
		b.Run(kind, func(b *testing.B) {
			tg := testdb.Get(b, kind)
			tab := tg.CreateTable(b)
			st, err := session.Open(context.Background(), tg.DB, tg.Dialect, session.WithTable(tab))
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
			// The three handlers write the same response, a number, so
			// that the bare handler does the same work but the session's.
			mux.HandleFunc("GET /static", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, 0) })
			mux.HandleFunc("GET /read", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, session.FromContext(r.Context()).GetInt("n"))
			})
			mux.HandleFunc("POST /write", func(w http.ResponseWriter, r *http.Request) {
				s := session.FromContext(r.Context())
				n := s.GetInt("n") + 1
				s.Set("n", n)
				fmt.Fprint(w, n)
			})
			h := mw.Wrap(mux)
			rec := serve(h, "POST", "/write", "")
			ck, err := http.ParseSetCookie(rec.Header().Get("Set-Cookie"))
			if err != nil {
				b.Fatal(err)
			}
			cookie := ck.Name + "=" + ck.Value

			// The bare statements, on a row of their own.
			ctx := context.Background()
			other := st.New()
			other.Set("n", 1)
			if err := st.Save(ctx, other); err != nil {
				b.Fatal(err)
			}
			key := visit.HashToken(other.Token())
			stmts, _ := tg.Dialect.Statements(tab)
			sel := prepare(b, tg.DB, stmts.Load)
			upd := prepare(b, tg.DB, bareUpdate(b, tg, tab))
			blob := make([]byte, 200)
			at := time.Now().Add(time.Hour)
			writes := 0
			now := tg.Dialect.EncodeTime(time.Now().UTC().Truncate(time.Microsecond))
			var data []byte
			var created, expiry any
			var version int64
			static := httptest.NewRequest("GET", "/static", nil)
			static.Header.Set("Cookie", cookie)
			bareSelect := func() {
				if err := sel.QueryRowContext(ctx, key, now).Scan(&data, &created, &expiry, &version); err != nil {
					b.Fatal(err)
				}
			}
			bareUpdate := func() {
				writes++
				blob[0], blob[1] = byte(writes), byte(writes>>8)
				if _, err := upd.ExecContext(ctx, blob, tg.Dialect.EncodeTime(at.Add(time.Duration(writes)*time.Second)), key); err != nil {
					b.Fatal(err)
				}
			}

			for _, bc := range []struct {
				name, method, path string
				bare               []func()
			}{
				{"untouched", "GET", "/static", nil},
				{"read", "GET", "/read", []func(){bareSelect}},
				{"write", "POST", "/write", []func(){bareSelect, bareUpdate}},
			} {
				b.Run(bc.name, func(b *testing.B) {
					req := httptest.NewRequest(bc.method, bc.path, nil)
					req.Header.Set("Cookie", cookie)
					interleaved(b, func(int) {
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, req)
						if rec.Code != http.StatusOK {
							b.Fatalf("status %d", rec.Code)
						}
					}, func(int) {
						mux.ServeHTTP(httptest.NewRecorder(), static)
						for _, f := range bc.bare {
							f()
						}
					})
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
