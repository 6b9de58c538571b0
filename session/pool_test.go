package session_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// poolWatchdog fails t with every goroutine's stack when done is not
// closed within limit: the requests deadlocked.
func poolWatchdog(t *testing.T, limit time.Duration, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(limit):
		var b strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Fatalf("the requests did not finish within %v: deadlock?\n%s", limit, b.String())
	}
}

// poolErrors records what reaches the middleware's error handler.
type poolErrors struct {
	mu   sync.Mutex
	errs []error
}

func (p *poolErrors) handle(w http.ResponseWriter, r *http.Request, err error) {
	p.mu.Lock()
	p.errs = append(p.errs, err)
	p.mu.Unlock()
	http.Error(w, "session error", http.StatusInternalServerError)
}

func (p *poolErrors) all() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]error(nil), p.errs...)
}

// TestPoolPressure runs 50 concurrent requests of 10 visitors through the
// middleware on a pool of two connections; each handler reads its session,
// sleeps 20ms holding it (in Locked mode: holding the row lock and a
// connection), then sets a value and writes the response. With a roomy
// deadline every request completes and no change is lost; with a tight one
// each request completes or fails with an error wrapping
// context.DeadlineExceeded. No request hangs.
func TestPoolPressure(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		tab := tg.CreateTable(t)
		for _, m := range everyMode {
			t.Run(m.String(), func(t *testing.T) {
				for _, c := range []struct {
					name     string
					deadline time.Duration
				}{
					{"roomy deadline", 20 * time.Second},
					{"tight deadline", 60 * time.Millisecond},
				} {
					t.Run(c.name, func(t *testing.T) {
						poolPressure(t, tg, tab, m, c.deadline)
					})
				}
			})
		}
	})
}

func poolPressure(t *testing.T, tg *testdb.Target, tab visit.Table, mode session.Mode, deadline time.Duration) {
	const (
		visitors = 10
		requests = 50
		hold     = 20 * time.Millisecond
	)
	ctx := context.Background()
	db := tg.Open(t)
	db.SetMaxOpenConns(2)
	st, err := session.Open(ctx, db, tg.Dialect, session.WithTable(tab), session.WithMode(mode),
		session.WithLockTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var errs poolErrors
	mw, err := session.NewMiddleware(ctx, st, session.MiddlewareOptions{ErrorHandler: errs.handle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mw.Close() })
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n := s.GetInt("n")
		time.Sleep(hold)
		s.Set("n", n+1)
		s.Set(r.URL.Query().Get("r"), true)
		io.WriteString(w, "ok")
	}))

	tokens := make([]string, visitors)
	for i := range tokens {
		s := st.New()
		s.Set("n", 0)
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		tokens[i] = s.Token()
	}

	codes := make([]int, requests)
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, deadline)
			defer cancel()
			req := httptest.NewRequestWithContext(rctx, "GET", fmt.Sprintf("/?r=r%d", i), nil)
			req.AddCookie(&http.Cookie{Name: session.DefaultCookieName, Value: tokens[i%visitors]})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			codes[i] = rec.Code
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	poolWatchdog(t, 2*time.Minute, done)

	failed := 0
	for _, code := range codes {
		switch code {
		case http.StatusOK:
		case http.StatusInternalServerError:
			failed++
		default:
			t.Errorf("status %d", code)
		}
	}
	all := errs.all()
	if len(all) != failed {
		t.Errorf("%d requests failed, the error handler saw %d errors", failed, len(all))
	}
	for _, err := range all {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a request failed with an error that does not wrap context.DeadlineExceeded: %v", err)
		}
	}
	t.Logf("%d of %d requests completed, %d ended at their %v deadline; %+v", requests-failed, requests, failed, deadline, st.Stats())
	if deadline > time.Second && failed > 0 {
		t.Errorf("%d requests failed under a %v deadline", failed, deadline)
	}

	// Every completed request's own key is stored; in Locked mode, where
	// read-modify-write serializes, so is every increment.
	completed := map[string]bool{}
	for i, code := range codes {
		if code == http.StatusOK {
			completed[fmt.Sprintf("r%d", i)] = true
		}
	}
	for v, tok := range tokens {
		s, err := st.Load(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		st.Release(ctx, s)
		// A request that ended at its deadline may still have been
		// committed (the server finishes a statement whose client gave
		// up), so the stored changes are those of every completed request
		// plus possibly some failed ones; each save is atomic, so in
		// Locked mode the counter equals the number of stored request keys.
		stored := 0
		for i := v; i < requests; i += visitors {
			key := fmt.Sprintf("r%d", i)
			if s.Has(key) {
				stored++
			}
			if completed[key] && mode != session.LastWriteWins && !s.Has(key) {
				t.Errorf("visitor %d: the change of completed request %s was lost", v, key)
			}
		}
		if mode == session.Locked && s.GetInt("n") != stored {
			t.Errorf("visitor %d: n = %d with %d stored request keys", v, s.GetInt("n"), stored)
		}
	}
	poolNoneInUse(t, db)
}

// poolNoneInUse fails t unless db has no connection in use within a few
// seconds.
func poolNoneInUse(t *testing.T, db *sql.DB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for db.Stats().InUse != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := db.Stats().InUse; n != 0 {
		t.Errorf("%d connections still in use", n)
	}
}

// TestPoolSingleConnection runs every operation, in every concurrency
// mode, on a pool of a single connection, each with a deadline: an
// operation that needed a second connection would wait for it until the
// deadline. Locked mode holds the connection from Load to Save, Renew,
// Destroy or Release, and every statement in between runs on it.
func TestPoolSingleConnection(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		tab := tg.CreateTable(t)
		for _, m := range everyMode {
			t.Run(m.String(), func(t *testing.T) {
				db := tg.Open(t)
				db.SetMaxOpenConns(1)
				st, err := session.Open(context.Background(), db, tg.Dialect, session.WithTable(tab), session.WithMode(m))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				// Each step runs under the context of its request, which
				// ends 10 seconds after the request began (a Locked-mode
				// transaction lives as long as the context of its load).
				// Afterwards the pool's only connection is in use exactly
				// when the current session s keeps its row lock.
				var s *session.Session
				ctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(func() { cancel() })
				request := func() {
					cancel()
					ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
				}
				do := func(what string, f func(ctx context.Context) error) {
					t.Helper()
					if err := f(ctx); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					want := 0
					if s != nil && s.Locked() {
						want = 1
					}
					if n := db.Stats().InUse; n != want {
						t.Fatalf("after %s: %d connections in use, want %d", what, n, want)
					}
				}
				load := func(tok string) func(ctx context.Context) error {
					return func(ctx context.Context) (err error) {
						s, err = st.Load(ctx, tok)
						if err == nil && s.IsNew() {
							err = errors.New("the session is gone")
						}
						return err
					}
				}

				s = st.New()
				s.Set("a", 1)
				request()
				do("insert", func(ctx context.Context) error { return st.Save(ctx, s) })
				tok := s.Token()

				request()
				do("load", load(tok))
				if m == session.Locked && !s.Locked() {
					t.Fatal("a Locked-mode load holds no lock")
				}
				s.Set("b", 2)
				do("save", func(ctx context.Context) error { return st.Save(ctx, s) })

				request()
				do("load", load(tok))
				do("touch", func(ctx context.Context) error { return st.Touch(ctx, s) })
				s.Set("c", 3)
				do("save after touch", func(ctx context.Context) error { return st.Save(ctx, s) })

				request()
				do("load", load(tok))
				do("save unchanged", func(ctx context.Context) error { return st.Save(ctx, s) })

				request()
				do("load", load(tok))
				s.Set("d", 4)
				do("renew", func(ctx context.Context) error { return st.Renew(ctx, s) })
				if s.Token() == tok {
					t.Fatal("renew kept the token")
				}
				tok = s.Token()
				request()
				do("load the renewed session", load(tok))
				if got := s.Values(); len(got) != 4 {
					t.Fatalf("values after renew: %v", got)
				}
				do("release", func(ctx context.Context) error { st.Release(ctx, s); return nil })

				if m == session.Merge {
					// A lost conditional write reloads and writes again on
					// the one connection.
					request()
					do("load", load(tok))
					first := s
					do("load", load(tok))
					second := s
					first.Set("x", 1)
					second.Set("y", 2)
					do("save", func(ctx context.Context) error { return st.Save(ctx, first) })
					do("conflicting save", func(ctx context.Context) error { return st.Save(ctx, second) })
					if st.Stats().Conflicts == 0 {
						t.Fatal("the second save did not conflict")
					}
				}

				request()
				do("load of an unknown token", func(ctx context.Context) (err error) {
					s, err = st.Load(ctx, visit.NewToken())
					if err == nil && !s.IsNew() {
						err = errors.New("an unknown token loaded a session")
					}
					return err
				})

				request()
				do("load", load(tok))
				do("destroy", func(ctx context.Context) error { return st.Destroy(ctx, s) })
				do("load after destroy", func(ctx context.Context) (err error) {
					s, err = st.Load(ctx, tok)
					if err == nil && !s.IsNew() {
						err = errors.New("a destroyed session loaded")
					}
					return err
				})

				// Through the middleware: a new session, its renewal and
				// its end, one request at a time.
				mw, err := session.NewMiddleware(context.Background(), st, session.MiddlewareOptions{TrackAll: true, Logger: discardLogger()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { mw.Close() })
				h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					s := session.FromContext(r.Context())
					switch r.URL.Path {
					case "/set":
						s.Set("n", s.GetInt("n")+1)
					case "/renew":
						if err := st.Renew(r.Context(), s); err != nil {
							http.Error(w, err.Error(), http.StatusInternalServerError)
							return
						}
					case "/destroy":
						if err := st.Destroy(r.Context(), s); err != nil {
							http.Error(w, err.Error(), http.StatusInternalServerError)
							return
						}
					}
					io.WriteString(w, "ok")
				}))
				cookie := ""
				for _, path := range []string{"/set", "/set", "/renew", "/set", "/destroy", "/"} {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					req := httptest.NewRequestWithContext(ctx, "GET", path, nil)
					if cookie != "" {
						req.Header.Set("Cookie", cookie)
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					cancel()
					if rec.Code != http.StatusOK {
						t.Fatalf("%s: status %d: %s", path, rec.Code, rec.Body)
					}
					for _, c := range rec.Result().Cookies() {
						cookie = c.Name + "=" + c.Value
					}
					if n := db.Stats().InUse; n != 0 {
						t.Fatalf("after %s: %d connections in use", path, n)
					}
				}
			})
		}
	})
}

// TestPoolLockedDeadlineError lets the deadline of a Locked-mode request
// pass while it holds the row lock, between Load and Save: database/sql
// (or, on SQLite, the store's guard of the dedicated connection) rolls the
// transaction back and gives the connection back to the pool. Save then
// fails, whether it runs under the expired context or, as the middleware
// saves, under context.WithoutCancel of it, and its error names why: it
// wraps context.DeadlineExceeded, so that callers and the middleware's
// error handler can tell a request that ran out of time from a broken
// transaction. Nothing is written and the next request gets the lock.
func TestPoolLockedDeadlineError(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		tab := tg.CreateTable(t)
		db := tg.Open(t)
		db.SetMaxOpenConns(1)
		st, err := session.Open(context.Background(), db, tg.Dialect, session.WithTable(tab), session.WithMode(session.Locked))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		s := st.New()
		s.Set("n", 1)
		if err := st.Save(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		tok := s.Token()

		for _, c := range []struct {
			name string
			save func(ctx context.Context) context.Context
		}{
			{"save under the expired context", func(ctx context.Context) context.Context { return ctx }},
			{"save under WithoutCancel, as the middleware", context.WithoutCancel},
		} {
			t.Run(c.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				s, err := st.Load(ctx, tok)
				if err != nil || !s.Locked() {
					t.Fatalf("load: locked=%v %v", s.Locked(), err)
				}
				<-ctx.Done()
				poolNoneInUse(t, db) // the transaction was rolled back
				s.Set("n", 2)
				err = st.Save(c.save(ctx), s)
				if err == nil {
					t.Fatal("save succeeded after the deadline of the load")
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("save after the deadline: %v; want an error wrapping context.DeadlineExceeded", err)
				}
				poolNoneInUse(t, db)
				next, err := st.Load(context.Background(), tok)
				if err != nil {
					t.Fatal(err)
				}
				if n := next.GetInt("n"); n != 1 {
					t.Errorf("n = %d after a save that failed, want 1", n)
				}
				st.Release(context.Background(), next)
			})
		}
	})
}
