package session_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// graceSetup opens a store with a grace window of 10s on a fresh table and
// saves a session holding user=bob; it returns the store, the clock and
// the session's token.
func graceSetup(t *testing.T, tg *testdb.Target, opts ...session.Option) (*session.Store, *clock, visit.Table, string) {
	t.Helper()
	clk := newClock()
	tab := tg.CreateTable(t)
	st := open(t, tg, tab, append([]session.Option{session.WithRenewGrace(10 * time.Second), session.WithClock(clk.Now)}, opts...)...)
	ctx := context.Background()
	s := st.New()
	s.Set("user", "bob")
	if err := st.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	return st, clk, tab, s.Token()
}

// renewed loads tok and renews it, setting role=admin, and returns the
// new token.
func renewed(t *testing.T, st *session.Store, tok string) string {
	t.Helper()
	ctx := context.Background()
	s, err := st.Load(ctx, tok)
	if err != nil || s.IsNew() {
		t.Fatalf("load before renewal: %v, new %v", err, s.IsNew())
	}
	s.Set("role", "admin")
	if err := st.Renew(ctx, s); err != nil {
		t.Fatal(err)
	}
	if s.Token() == tok {
		t.Fatal("token unchanged by Renew")
	}
	return s.Token()
}

// TestRenewGraceLoad loads by the old token within the window and after
// it: within, the renewed session with its token; after, a new session.
func TestRenewGraceLoad(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		for _, mode := range []session.Mode{session.Merge, session.LastWriteWins, session.Locked} {
			t.Run(mode.String(), func(t *testing.T) {
				ctx := context.Background()
				st, clk, _, old := graceSetup(t, tg, session.WithMode(mode))
				fresh := renewed(t, st, old)
				clk.Add(9 * time.Second)
				s, err := st.Load(ctx, old)
				if err != nil || s.IsNew() || s.Token() != fresh || s.GetString("user") != "bob" || s.GetString("role") != "admin" {
					t.Fatalf("old token within the window: %v, new %v, token moved %v, %v", err, s.IsNew(), s.Token() == fresh, s.Values())
				}
				// A write through it lands on the renewed session.
				s.Set("seen", true)
				if err := st.Save(ctx, s); err != nil {
					t.Fatal(err)
				}
				n, err := st.Load(ctx, fresh)
				if err != nil || !n.GetBool("seen") || n.GetString("role") != "admin" {
					t.Fatalf("renewed session after the write: %v, %v", err, n.Values())
				}
				st.Release(ctx, n) // a Locked session holds its row until then

				if got := st.Stats().Forwards; got != 1 {
					t.Errorf("Stats().Forwards = %d, want 1", got)
				}
				clk.Add(2 * time.Second)
				if s, err := st.Load(ctx, old); err != nil || !s.IsNew() {
					t.Fatalf("old token after the window: %v, new %v", err, s.IsNew())
				}
				s, err = st.Load(ctx, fresh)
				if err != nil || s.IsNew() {
					t.Fatalf("new token after the window: %v, new %v", err, s.IsNew())
				}
				st.Release(ctx, s)
			})
		}
	})
}

// TestRenewGraceInFlightSave saves a session loaded by the old token
// before the renewal: within the window its changes merge into the
// renewed session (Merge) or overwrite it (LastWriteWins), which then
// holds both requests' work in Merge mode; without a window the save gives
// ErrNotFound and writes nothing.
func TestRenewGraceInFlightSave(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		for _, grace := range []time.Duration{10 * time.Second, 0} {
			for _, mode := range []session.Mode{session.Merge, session.LastWriteWins} {
				t.Run(mode.String()+"/grace="+grace.String(), func(t *testing.T) {
					ctx := context.Background()
					st, _, tab, old := graceSetup(t, tg, session.WithMode(mode), session.WithRenewGrace(grace))
					inflight, err := st.Load(ctx, old)
					if err != nil {
						t.Fatal(err)
					}
					fresh := renewed(t, st, old)
					rows := countRows(t, tg, tab)
					inflight.Set("cart", 3)
					err = st.Save(ctx, inflight)
					if grace == 0 {
						if !errors.Is(err, session.ErrNotFound) {
							t.Fatalf("save without a window: %v, want ErrNotFound", err)
						}
						if got := countRows(t, tg, tab); got != rows {
							t.Fatalf("%d rows after the failed save, want %d: a session came back", got, rows)
						}
						return
					}
					if err != nil {
						t.Fatalf("save within the window: %v", err)
					}
					if inflight.Token() != fresh {
						t.Fatal("the in-flight session did not move to the new token")
					}
					n, err := st.Load(ctx, fresh)
					if err != nil || n.GetInt("cart") != 3 || n.GetString("user") != "bob" {
						t.Fatalf("renewed session: %v, %v", err, n.Values())
					}
					if mode == session.Merge && n.GetString("role") != "admin" {
						t.Errorf("merge lost the renewing request's change: %v", n.Values())
					}
					if got := countRows(t, tg, tab); got != rows {
						t.Fatalf("%d rows after the save, want %d", got, rows)
					}
				})
			}
		}
	})
}

// TestRenewGraceNoResurrection checks that nothing written with the old
// token brings the old session back or stretches the window: touches,
// last-write-wins saves and a renewal of a stale copy.
func TestRenewGraceNoResurrection(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		st, clk, _, old := graceSetup(t, tg, session.WithIdleTimeout(time.Hour))
		stale, err := st.Load(ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		fresh := renewed(t, st, old)
		clk.Add(5 * time.Second)
		// A touch through the stale copy must not extend the forward.
		if err := st.Touch(ctx, stale); err != nil {
			t.Fatal(err)
		}
		clk.Add(6 * time.Second)
		if s, err := st.Load(ctx, old); err != nil || !s.IsNew() {
			t.Fatalf("old token after the window, past a touch: %v, new %v", err, s.IsNew())
		}
		// A second renewal within a new window chains: the first token
		// is long gone, the second forwards to the third.
		third := renewed(t, st, fresh)
		if s, err := st.Load(ctx, fresh); err != nil || s.Token() != third {
			t.Fatalf("second token after the second renewal: %v, token %q", err, s.Token())
		}
	})
}

// TestRenewGraceDestroy logs out through the old token within the window:
// the renewed session ends.
func TestRenewGraceDestroy(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		for _, del := range []bool{false, true} {
			t.Run(map[bool]string{false: "end", true: "delete"}[del], func(t *testing.T) {
				ctx := context.Background()
				st, _, _, old := graceSetup(t, tg, session.WithDeleteRows(del))
				stale, err := st.Load(ctx, old)
				if err != nil {
					t.Fatal(err)
				}
				fresh := renewed(t, st, old)
				if err := st.Destroy(ctx, stale); err != nil {
					t.Fatal(err)
				}
				if s, err := st.Load(ctx, fresh); err != nil || !s.IsNew() {
					t.Fatalf("renewed session after a logout through the old token: %v, new %v", err, s.IsNew())
				}
			})
		}
	})
}

// TestRenewGraceForwardIsSealed reads the forward row: it does not hold
// the new token, nor its bytes, and a token other than the old one cannot
// follow it.
func TestRenewGraceForwardIsSealed(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		st, _, tab, old := graceSetup(t, tg)
		fresh := renewed(t, st, old)
		var data []byte
		var version int64
		arg := map[string]string{"postgres": "$1", "mysql": "?", "sqlite": "?"}[tg.Kind]
		q := "SELECT " + tg.Dialect.Quote(tab.Data) + ", " + tg.Dialect.Quote(tab.Version) + " FROM " + tg.Dialect.Quote(tab.Name) +
			" WHERE " + tg.Dialect.Quote(tab.Key) + " = " + arg
		if err := tg.DB.QueryRowContext(ctx, q, visit.HashToken(old)).Scan(&data, &version); err != nil {
			t.Fatal(err)
		}
		if version != -1 || bytes.Contains(data, []byte(fresh)) || bytes.Contains(data, []byte(visit.HashToken(fresh))) {
			t.Fatalf("forward row: version %d, data %q", version, data)
		}
		// A corrupt forward leads nowhere. (That only the old token opens
		// a forward is checked without a database, in
		// TestForwardSealing.)
		corrupt := "UPDATE " + tg.Dialect.Quote(tab.Name) + " SET " + tg.Dialect.Quote(tab.Data) + " = " +
			arg + " WHERE " + tg.Dialect.Quote(tab.Version) + " = -1"
		if _, err := tg.DB.ExecContext(ctx, corrupt, []byte("not a forward")); err != nil {
			t.Fatal(err)
		}
		if s, err := st.Load(ctx, old); err != nil || !s.IsNew() {
			t.Fatalf("old token with a corrupt forward: %v, new %v", err, s.IsNew())
		}
	})
}

// TestRenewGraceMiddleware sends the old cookie within the window: the
// handler sees the renewed session and the response carries the new
// token.
func TestRenewGraceMiddleware(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		st, _, _, old := graceSetup(t, tg)
		fresh := renewed(t, st, old)
		mw, err := session.NewMiddleware(ctx, st, session.MiddlewareOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var user string
		h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user = session.FromContext(r.Context()).GetString("user")
		}))
		req := httptest.NewRequest("GET", "https://example.com/", nil)
		req.AddCookie(&http.Cookie{Name: "visit", Value: old})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if user != "bob" {
			t.Fatalf("handler saw user %q, want the renewed session's", user)
		}
		var got string
		for _, c := range rec.Result().Cookies() {
			if c.Name == "visit" {
				got = c.Value
			}
		}
		if got != fresh {
			t.Fatalf("response cookie %q, want the new token", got)
		}
	})
}

func TestRenewGraceOption(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	tab := tg.CreateTable(t)
	for _, d := range []time.Duration{-time.Second, session.MaxRenewGrace + time.Second} {
		if _, err := session.Open(context.Background(), tg.DB, tg.Dialect, session.WithTable(tab), session.WithRenewGrace(d)); err == nil {
			t.Errorf("WithRenewGrace(%v) accepted", d)
		}
	}
}

// TestRenewGraceConcurrentWriters renews a session while eight writers,
// each holding the old token, save keys of their own: within the window
// every save lands on the renewed session, and it ends up holding every
// writer's keys.
func TestRenewGraceConcurrentWriters(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		st, _, _, old := graceSetup(t, tg, session.WithMaxAttempts(100))
		const writers, saves = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*saves+1)
		start := make(chan struct{})
		for w := range writers {
			wg.Go(func() {
				<-start
				for i := range saves {
					s, err := st.Load(ctx, old)
					if err != nil || s.IsNew() {
						errs <- fmt.Errorf("writer %d: load by the old token: %v, new %v", w, err, s.IsNew())
						return
					}
					s.Set(fmt.Sprintf("w%d-%d", w, i), true)
					if err := st.Save(ctx, s); err != nil {
						errs <- fmt.Errorf("writer %d: save %d: %w", w, i, err)
					}
				}
			})
		}
		var fresh string
		wg.Go(func() {
			<-start
			s, err := st.Load(ctx, old)
			if err == nil {
				err = st.Renew(ctx, s)
			}
			if err != nil {
				errs <- fmt.Errorf("renew: %w", err)
			}
			fresh = s.Token()
		})
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		s, err := st.Load(ctx, fresh)
		if err != nil {
			t.Fatal(err)
		}
		for w := range writers {
			for i := range saves {
				if !s.GetBool(fmt.Sprintf("w%d-%d", w, i)) {
					t.Errorf("key of writer %d, save %d lost", w, i)
				}
			}
		}
	})
}
