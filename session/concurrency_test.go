package session_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// EnvStress enables the long variants of the concurrency tests, whose
// names contain "Stress" (make test-stress).
const EnvStress = "VISITSESSION_STRESS"

// stress reports whether the long variants run.
func stress() bool { return os.Getenv(EnvStress) == "1" }

// needStress skips a Stress test unless VISITSESSION_STRESS=1.
func needStress(t *testing.T) {
	t.Helper()
	if !stress() {
		t.Skipf("set %s=1 to run (make test-stress)", EnvStress)
	}
}

// modes lists the concurrency modes by name, in test order.
var modes = []struct {
	name string
	mode session.Mode
}{
	{"merge", session.Merge},
	{"last-write-wins", session.LastWriteWins},
	{"locked", session.Locked},
}

// openOn opens a store on db with opts, closed at the end of the test.
func openOn(t *testing.T, db *sql.DB, tg *testdb.Target, tab visit.Table, opts ...session.Option) *session.Store {
	t.Helper()
	st, err := session.Open(context.Background(), db, tg.Dialect, append([]session.Option{session.WithTable(tab)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// noneInUse fails t if a pool still has connections in use once the test's
// requests are done: a locked session that was not released, or a
// transaction left open.
func noneInUse(t *testing.T, dbs ...*sql.DB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, db := range dbs {
		for db.Stats().InUse != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := db.Stats().InUse; n != 0 {
			t.Errorf("%d connections still in use", n)
		}
	}
}

// seed writes a new session holding values and returns its token.
func seed(t *testing.T, st *session.Store, values map[string]any) string {
	t.Helper()
	s := st.New()
	for k, v := range values {
		s.Set(k, v)
	}
	if err := st.Save(context.Background(), s); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return s.Token()
}

// read loads token outside any lock and returns its values (nil when the
// session is gone).
func read(t *testing.T, st *session.Store, token string) map[string]any {
	t.Helper()
	s, err := st.Load(context.Background(), token)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	st.Release(context.Background(), s)
	if s.IsNew() {
		return nil
	}
	return s.Values()
}

// sumStats adds the counters of stores.
func sumStats(stores ...*session.Store) session.Stats {
	var sum session.Stats
	for _, st := range stores {
		s := st.Stats()
		sum.Loads += s.Loads
		sum.Updates += s.Updates
		sum.Conflicts += s.Conflicts
		sum.ConflictFailures += s.ConflictFailures
		sum.Retries += s.Retries
		sum.LockTimeouts += s.LockTimeouts
	}
	return sum
}

// TestConcurrentDisjointKeys runs 100 trials in Merge mode and a few in
// the other modes; TestStressConcurrentDisjointKeys runs 1,000 in each.
func TestConcurrentDisjointKeys(t *testing.T) {
	disjointKeys(t, map[session.Mode]int{session.Merge: 100, session.LastWriteWins: 10, session.Locked: 20})
}

// TestStressConcurrentDisjointKeys is TestConcurrentDisjointKeys with
// 1,000 trials per database and mode.
func TestStressConcurrentDisjointKeys(t *testing.T) {
	needStress(t)
	disjointKeys(t, map[session.Mode]int{session.Merge: 1000, session.LastWriteWins: 1000, session.Locked: 1000})
}

// disjointKeys stands for two instances of an application, each with its
// own pool and Store, serving two requests of one visitor at once: each
// request loads the session and sets a key of its own. In Merge mode a
// barrier makes both load before either saves, so one of them always
// loses the conditional write: both changes must survive every trial, with
// exactly one conflict per trial. In Locked mode the second load waits for
// the first request's lock. In LastWriteWins mode, the documented
// trade-off: the later save erases the other request's key in every trial.
func disjointKeys(t *testing.T, trialsOf map[session.Mode]int) {
	for _, m := range modes {
		trials := trialsOf[m.mode]
		t.Run(m.name, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
				t.Parallel() // the databases, not this process, do the work
				ctx := context.Background()
				tab := tg.CreateTable(t)
				dbA, dbB := tg.Open(t), tg.Open(t)
				opts := []session.Option{session.WithMode(m.mode), session.WithLockTimeout(30 * time.Second)}
				a, b := openOn(t, dbA, tg, tab, opts...), openOn(t, dbB, tg, tab, opts...)
				lost := 0
				start := time.Now()
				for trial := range trials {
					tok := seed(t, a, map[string]any{"base": trial})
					var loaded, wg sync.WaitGroup
					errs := make([]error, 2)
					loaded.Add(2)
					for i, st := range []*session.Store{a, b} {
						wg.Add(1)
						go func() {
							defer wg.Done()
							s, err := st.Load(ctx, tok)
							if m.mode != session.Locked {
								loaded.Done()
								loaded.Wait() // both have read version 1
							}
							if err != nil {
								errs[i] = err
								st.Release(ctx, s)
								return
							}
							s.Set(fmt.Sprintf("from%d", i), trial)
							errs[i] = st.Save(ctx, s)
						}()
					}
					wg.Wait()
					for _, err := range errs {
						if err != nil {
							t.Fatalf("trial %d: %v", trial, err)
						}
					}
					got := read(t, a, tok)
					both := got["from0"] == trial && got["from1"] == trial && got["base"] == trial
					if m.mode == session.LastWriteWins {
						if both {
							t.Fatalf("trial %d: last-write-wins kept both changes: %v", trial, got)
						}
						lost++
						continue
					}
					if !both || len(got) != 3 {
						t.Fatalf("trial %d: values %v, want base, from0 and from1 = %d", trial, got, trial)
					}
				}
				sum := sumStats(a, b)
				t.Logf("%s/%s: %d trials in %v: %d conflicts (%.2f per trial), %d retries, %d conflict failures, %d changes lost",
					m.name, tg.Kind, trials, time.Since(start).Round(time.Millisecond), sum.Conflicts,
					float64(sum.Conflicts)/float64(trials), sum.Retries, sum.ConflictFailures, lost)
				switch m.mode {
				case session.Merge:
					if sum.Conflicts != uint64(trials) || sum.ConflictFailures != 0 {
						t.Fatalf("conflicts %d, failures %d: want exactly one conflict per trial", sum.Conflicts, sum.ConflictFailures)
					}
				default:
					if sum.Conflicts != 0 || sum.ConflictFailures != 0 {
						t.Fatalf("conflicts %d, failures %d in %s mode", sum.Conflicts, sum.ConflictFailures, m.name)
					}
				}
				noneInUse(t, dbA, dbB)
			})
		})
	}
}

// TestConcurrentAppend sends 50 concurrent requests of one visitor, each
// adding a key of its own: all 50 keys are there at the end, each with its
// request's value, in Merge mode (all 50 load before any saves) and in
// Locked mode (they queue for the row lock).
func TestConcurrentAppend(t *testing.T) { concurrentAppend(t, 1) }

// TestStressConcurrentAppend repeats TestConcurrentAppend 10 times on
// fresh sessions, since in Merge mode the outcome depends on timing.
func TestStressConcurrentAppend(t *testing.T) {
	needStress(t)
	concurrentAppend(t, 10)
}

// concurrentAppend runs rounds of the append check per mode and database.
func concurrentAppend(t *testing.T, rounds int) {
	const requests = 50
	for _, m := range []session.Mode{session.Merge, session.Locked} {
		t.Run(m.String(), func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
				t.Parallel() // the databases, not this process, do the work
				tab := tg.CreateTable(t)
				// A pool of 16 connections, as an application would cap it:
				// the 50 requests still run at once, but do not open 50
				// connections (slow on PostgreSQL).
				db := tg.Open(t)
				db.SetMaxOpenConns(16)
				st := openOn(t, db, tg, tab, session.WithMode(m), session.WithLockTimeout(30*time.Second))
				for range rounds {
					appendRound(t, st, m, requests)
				}
				stats := st.Stats()
				t.Logf("%s/%s: %d rounds of %d requests: %d conflicts (%.2f per request), %d retries, %d conflict failures",
					m, tg.Kind, rounds, requests, stats.Conflicts, float64(stats.Conflicts)/float64(rounds*requests), stats.Retries, stats.ConflictFailures)
				noneInUse(t, db)
			})
		})
	}
}

// appendRound runs one round of concurrentAppend on a fresh session.
func appendRound(t *testing.T, st *session.Store, m session.Mode, requests int) {
	t.Helper()
	ctx := context.Background()
	tok := seed(t, st, map[string]any{"base": true})
	var loaded, wg sync.WaitGroup
	loaded.Add(requests)
	errs := make(chan error, requests)
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := st.Load(ctx, tok)
			if m == session.Merge {
				loaded.Done()
				loaded.Wait()
			}
			if err != nil {
				errs <- err
				return
			}
			s.Set(fmt.Sprintf("req%02d", i), i)
			if err := st.Save(ctx, s); err != nil {
				errs <- fmt.Errorf("request %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := read(t, st, tok)
	if len(got) != requests+1 || got["base"] != true {
		t.Fatalf("%d values, want %d: %v", len(got), requests+1, got)
	}
	for i := range requests {
		if v := got[fmt.Sprintf("req%02d", i)]; v != i {
			t.Errorf("req%02d = %v, want %d", i, v, i)
		}
	}
}

// TestEndedSessionNotBroughtBack ends a session in one request (Destroy,
// keeping or deleting the row, or Renew) while another request that loaded
// it earlier still holds it: that request's save reports ErrNotFound, in
// every mode, and the old token stays dead. In Locked mode the other
// request gave its lock up early with Release, so its save is a plain
// conditional one; a request that instead waits for the lock finds no
// session when it gets it (TestLockedWaiterFindsSessionEnded).
//
// The ending request's clock runs 10 seconds ahead of the saving one's, as
// between two servers whose clocks drift: the ended row must not look live
// to the lagging server either.
func TestEndedSessionNotBroughtBack(t *testing.T) {
	ends := []struct {
		name string
		opts []session.Option
		end  func(st *session.Store, ctx context.Context, s *session.Session) error
	}{
		{"destroy", nil, (*session.Store).Destroy},
		{"destroy deleting the row", []session.Option{session.WithDeleteRows(true)}, (*session.Store).Destroy},
		{"renew", nil, (*session.Store).Renew},
	}
	for _, m := range modes {
		for _, end := range ends {
			t.Run(m.name+"/"+end.name, func(t *testing.T) {
				testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
					ctx := context.Background()
					tab := tg.CreateTable(t)
					base := time.Now()
					ahead, behind := func() time.Time { return base.Add(time.Since(base) + 10*time.Second) }, func() time.Time { return time.Now() }
					opts := append([]session.Option{session.WithMode(m.mode), session.WithTouchInterval(0)}, end.opts...)
					ender := openOn(t, tg.DB, tg, tab, append(opts, session.WithClock(ahead))...)
					saver := openOn(t, tg.DB, tg, tab, append(opts, session.WithClock(behind))...)
					tok := seed(t, saver, map[string]any{"base": 1})

					// A writing request and a read-only one load the session.
					writer, err := saver.Load(ctx, tok)
					if err != nil || writer.IsNew() {
						t.Fatalf("load: new=%v %v", writer.IsNew(), err)
					}
					saver.Release(ctx, writer)
					reader, err := saver.Load(ctx, tok)
					if err != nil || reader.IsNew() {
						t.Fatalf("load: new=%v %v", reader.IsNew(), err)
					}
					saver.Release(ctx, reader)

					// Another request ends the session.
					e, err := ender.Load(ctx, tok)
					t.Cleanup(func() { ender.Release(ctx, e) })
					if err != nil || e.IsNew() {
						t.Fatalf("ender load: new=%v %v", e.IsNew(), err)
					}
					if err := end.end(ender, ctx, e); err != nil {
						t.Fatal(err)
					}

					writer.Set("late", true)
					if err := saver.Save(ctx, writer); !errors.Is(err, session.ErrNotFound) {
						t.Fatalf("save after %s: %v, want ErrNotFound", end.name, err)
					}
					if err := saver.Touch(ctx, reader); err != nil {
						t.Fatalf("touch after %s: %v", end.name, err)
					}
					if err := saver.Renew(ctx, reader); !errors.Is(err, session.ErrNotFound) {
						t.Fatalf("renew after %s: %v, want ErrNotFound", end.name, err)
					}
					for name, st := range map[string]*session.Store{"saver": saver, "ender": ender} {
						if got := read(t, st, tok); got != nil {
							t.Fatalf("the old token loads again for the %s: %v", name, got)
						}
					}
					if end.name == "renew" {
						if got := read(t, ender, e.Token()); got["base"] != 1 || got["late"] != nil {
							t.Fatalf("renewed session holds %v", got)
						}
					}
					noneInUse(t, tg.DB)
				})
			})
		}
	}
}

// TestLockedWaiterFindsSessionEnded has a Locked-mode request wait for the
// row lock while the holder destroys or renews the session, or while the
// session expires: when the waiter gets the lock there is no session under
// the old token (although the waiter read its clock before the wait), and
// what it saves goes to a new token.
func TestLockedWaiterFindsSessionEnded(t *testing.T) {
	for _, end := range []string{"destroy", "renew", "expire"} {
		t.Run(end, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
				ctx := context.Background()
				tab := tg.CreateTable(t)
				clk := newClock()
				st := openOn(t, tg.DB, tg, tab, session.WithMode(session.Locked), session.WithLockTimeout(30*time.Second),
					session.WithClock(clk.Now), session.WithIdleTimeout(time.Hour))
				tok := seed(t, st, map[string]any{"base": 1})
				holder, err := st.Load(ctx, tok)
				t.Cleanup(func() { st.Release(ctx, holder) })
				if err != nil || !holder.Locked() {
					t.Fatalf("holder: locked=%v %v", holder.Locked(), err)
				}
				waited := make(chan *session.Session, 1)
				go func() {
					s, err := st.Load(ctx, tok)
					if err != nil {
						t.Error(err)
					}
					waited <- s
				}()
				time.Sleep(50 * time.Millisecond) // the waiter is queued on the lock
				switch end {
				case "destroy":
					err = st.Destroy(ctx, holder)
				case "renew":
					err = st.Renew(ctx, holder)
				case "expire":
					clk.Add(2 * time.Hour)
					st.Release(ctx, holder)
				}
				if err != nil {
					t.Fatal(err)
				}
				w := <-waited
				if w == nil {
					t.Fatal("the waiter's load failed")
				}
				t.Cleanup(func() { st.Release(ctx, w) })
				if !w.IsNew() || w.Locked() {
					t.Fatalf("waiter got new=%v locked=%v, want a new session", w.IsNew(), w.Locked())
				}
				w.Set("late", true)
				if err := st.Save(ctx, w); err != nil {
					t.Fatal(err)
				}
				if w.Token() == tok || read(t, st, tok) != nil {
					t.Fatal("the old token came back")
				}
				noneInUse(t, tg.DB)
			})
		})
	}
}

// TestLockedContextEndsReleasesLock cancels the context of a Locked-mode
// request that holds the row lock and then never saves or releases (a
// handler that gave up): the lock and the connection are freed, so the
// next request gets the lock at once instead of timing out. On SQLite this
// frees the database's write lock, which every writer needs.
func TestLockedContextEndsReleasesLock(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		tab := tg.CreateTable(t)
		db := tg.Open(t)
		st := openOn(t, db, tg, tab, session.WithMode(session.Locked), session.WithLockTimeout(5*time.Second))
		tok := seed(t, st, map[string]any{"n": 1})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		abandoned, err := st.Load(ctx, tok)
		t.Cleanup(func() { st.Release(context.Background(), abandoned) })
		if err != nil || !abandoned.Locked() {
			t.Fatalf("load: locked=%v %v", abandoned.Locked(), err)
		}
		cancel()
		start := time.Now()
		next, err := st.Load(context.Background(), tok)
		t.Cleanup(func() { st.Release(context.Background(), next) })
		if err != nil || !next.Locked() {
			t.Fatalf("next request: locked=%v %v", next.Locked(), err)
		}
		if waited := time.Since(start); waited > 2*time.Second {
			t.Fatalf("the next request waited %v for a lock whose holder was cancelled", waited)
		}
		next.Set("n", 2)
		if err := st.Save(context.Background(), next); err != nil {
			t.Fatal(err)
		}
		abandoned.Set("n", 3)
		if err := st.Save(context.Background(), abandoned); !errors.Is(err, sql.ErrTxDone) {
			t.Fatalf("save of the abandoned session: %v, want sql.ErrTxDone", err)
		}
		if got := read(t, st, tok); got["n"] != 2 {
			t.Fatalf("n = %v, want 2", got["n"])
		}
		noneInUse(t, db)
	})
}
