package sweeper_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	sq "github.com/Masterminds/squirrel"
	"github.com/go-sql-driver/mysql"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/sweeper"
)

// policies are the two ways rows leave the set of expired sessions.
var policies = []struct {
	name string
	opts sweeper.Options
}{
	{"delete", sweeper.Options{}},
	{"clear", sweeper.Options{ClearData: true, DeleteAfter: sweeper.Never}},
}

// TestExtendedDuringSweep extends an expired session in a transaction that
// is still open when the sweep starts, and commits it while the sweep is
// running (waiting for the row's lock on MySQL and SQLite, passing it over
// on PostgreSQL). The session must survive with its new data.
func TestExtendedDuringSweep(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		for _, p := range policies {
			t.Run(p.name, func(t *testing.T) {
				e := newEnv(t, tg)
				e.bulk(t, e.db, "old", 20, false, func(i int) time.Time { return now.Add(-time.Duration(i+1) * time.Minute) })
				ext := key("old10") // in the middle of the backlog
				n := func(s string) string { return tg.Dialect.Quote(s) }
				extend, args, err := sq.Update(n(e.tab.Name)).Set(n(e.tab.Data), []byte("extended")).
					Set(n(e.tab.Expiry), e.enc(now.Add(time.Hour))).Where(n(e.tab.Key)+" = ?", ext).
					PlaceholderFormat(tg.Dialect.Placeholder()).ToSql()
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				tx, err := e.db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.ExecContext(ctx, extend, args...); err != nil {
					_ = tx.Rollback()
					t.Fatal(err)
				}
				opts := p.opts
				opts.Clock, opts.BatchSize = fixedClock, 7
				sw := e.newSweeper(t, tg.Open(t), opts)
				type result struct {
					rep sweeper.Report
					err error
				}
				done := make(chan result, 1)
				go func() {
					rep, err := sw.SweepOnce(ctx)
					done <- result{rep, err}
				}()
				time.Sleep(300 * time.Millisecond)
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				res := <-done
				if res.err != nil || res.rep.Rows() != 19 {
					t.Errorf("sweep: %v, %v; want 19 rows swept", res.rep, res.err)
				}
				if r := e.get(t, ext); !r.found || string(r.data) != "extended" || !r.expiry.Equal(now.Add(time.Hour)) {
					t.Errorf("extended session after the sweep: %+v", r)
				}
			})
		}
	})
}

// TestConcurrentSweepers starts three sweepers, each with its own pool, at
// the same instant on one table, with and without the lease. Every expired
// row must be swept exactly once in total, with no error.
func TestConcurrentSweepers(t *testing.T) {
	const expired, live, sweepers = 900, 50, 3
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		for _, p := range policies {
			for _, withLease := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/lease=%v", p.name, withLease), func(t *testing.T) {
					e := newEnv(t, tg)
					e.bulk(t, e.db, "old", expired, false, func(i int) time.Time { return now.Add(-time.Duration(i) * time.Second) })
					e.bulk(t, e.db, "live", live, false, func(i int) time.Time { return now.Add(time.Hour) })
					opts := p.opts
					opts.Clock, opts.BatchSize, opts.Pause, opts.MaxRetries = fixedClock, 30, -1, 20
					if !withLease {
						opts.LeaseTTL = -1
					}
					var sws [sweepers]*sweeper.Sweeper
					for i := range sws {
						db := tg.Open(t)
						if err := db.PingContext(context.Background()); err != nil {
							t.Fatal(err)
						}
						sws[i] = e.newSweeper(t, db, opts)
					}
					var (
						wg      sync.WaitGroup
						start   = make(chan struct{})
						reports [sweepers]sweeper.Report
						errs    [sweepers]error
					)
					for i, sw := range sws {
						wg.Go(func() {
							<-start
							reports[i], errs[i] = sw.SweepOnce(context.Background())
						})
					}
					close(start)
					wg.Wait()
					var sum int64
					for i := range sws {
						if errs[i] != nil {
							t.Errorf("sweeper %d: %v", i, errs[i])
						}
						sum += reports[i].Rows()
						t.Logf("sweeper %d: %v", i, reports[i])
					}
					if sum != expired {
						t.Errorf("rows swept in total: %d, want %d", sum, expired)
					}
					left := e.count(t, "{expiry} <= ?", e.enc(now))
					if p.name == "clear" {
						left = e.count(t, "{expiry} <= ? AND {data} IS NOT NULL", e.enc(now))
					}
					if left != 0 {
						t.Errorf("%d expired rows left", left)
					}
					if got := e.count(t, "{expiry} > ? AND {data} IS NOT NULL", e.enc(now)); got != live {
						t.Errorf("%d live rows, want %d", got, live)
					}
				})
			}
		}
	})
}

// shortLockWaitDSN returns tg's DSN with a lock wait short enough for a
// test to hit it: the lock wait makes the database return the error that
// the dialect classifies as retryable.
func shortLockWaitDSN(t *testing.T, tg *testdb.Target) string {
	t.Helper()
	switch tg.Kind {
	case "sqlite":
		if !strings.Contains(tg.DSN, "busy_timeout(10000)") {
			t.Fatalf("unexpected SQLite DSN %q", tg.DSN)
		}
		return strings.Replace(tg.DSN, "busy_timeout(10000)", "busy_timeout(50)", 1)
	case "postgres":
		u, err := url.Parse(tg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("lock_timeout", "50ms")
		u.RawQuery = q.Encode()
		return u.String()
	case "mysql":
		cfg, err := mysql.ParseDSN(tg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params["innodb_lock_wait_timeout"] = "1" // seconds, the smallest value
		return cfg.FormatDSN()
	}
	t.Fatalf("unknown kind %q", tg.Kind)
	return ""
}

// signalWriter collects log output and closes signal the first time a
// write contains match.
type signalWriter struct {
	logBuffer
	match  string
	signal chan struct{}
	once   sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.match) {
		w.once.Do(func() { close(w.signal) })
	}
	return w.logBuffer.Write(p)
}

// TestRetryableErrorRetried holds a lock on the lease row (the database's
// write lock on SQLite) so that the sweeper's first attempt fails with a
// lock timeout or busy error, and releases it once the sweeper has logged
// its first retry: the retry must then succeed.
func TestRetryableErrorRetried(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newEnv(t, tg)
		e.bulk(t, e.db, "old", 10, false, func(i int) time.Time { return now.Add(-time.Minute) })
		// Create the lease row.
		if _, err := e.newSweeper(t, e.db, sweeper.Options{DeleteAfter: time.Hour}).SweepOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		db := openDSN(t, tg.Driver, shortLockWaitDSN(t, tg))
		logs := &signalWriter{match: `msg="sweeper: retrying"`, signal: make(chan struct{})}
		sw := e.newSweeper(t, db, sweeper.Options{MaxRetries: 10, Logger: slog.New(slog.NewTextHandler(logs, nil))})

		n := func(s string) string { return tg.Dialect.Quote(s) }
		lock, args, err := sq.Update(n(e.tab.Name)).Set(n(e.tab.Version), sq.Expr(n(e.tab.Version)+" + 1")).
			Where(n(e.tab.Key)+" = ?", sweeper.LeaseKey).PlaceholderFormat(tg.Dialect.Placeholder()).ToSql()
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		tx, err := e.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, lock, args...); err != nil {
			_ = tx.Rollback()
			t.Fatal(err)
		}
		released := make(chan struct{})
		go func() {
			defer close(released)
			select {
			case <-logs.signal:
			case <-time.After(30 * time.Second):
				t.Error("no retry within 30s")
			}
			if err := tx.Commit(); err != nil {
				t.Error(err)
			}
		}()
		rep, err := sw.SweepOnce(ctx)
		<-released
		if err != nil || rep.Deleted != 10 || rep.Errors == 0 {
			t.Errorf("got %v, %v; want 10 deleted after retried errors", rep, err)
		}
	})
}

// TestRunStopsOnCancel cancels Run in the middle of a run: Run must return
// nil promptly, after the batch in flight, with the lease released, the
// report counting exactly the rows that are gone, and no goroutine left.
func TestRunStopsOnCancel(t *testing.T) {
	const rows = 400
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newEnv(t, tg)
		e.bulk(t, e.db, "old", rows, false, func(i int) time.Time { return time.Now().Add(-time.Duration(i+1) * time.Second) })
		rec := newHookRecorder()
		sw := e.newSweeper(t, tg.Open(t), sweeper.Options{BatchSize: 10, Pause: 20 * time.Millisecond, Hook: rec.hook})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sw.Run(ctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for e.count(t, "") == rows {
			if time.Now().After(deadline) {
				t.Fatal("nothing swept in 10s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5s of cancel")
		}
		reps := rec.all()
		if len(reps) != 1 {
			t.Fatalf("%d reports, want 1: %v", len(reps), reps)
		}
		rep := reps[0]
		left := e.count(t, "")
		if !errors.Is(rep.Err, context.Canceled) || rep.Deleted != int64(rows-left) || left == 0 {
			t.Errorf("report %v with %d rows left; want an interrupted run counting the %d rows gone", rep, left, rows-left)
		}
		if l := e.get(t, sweeper.LeaseKey); !l.found || l.expiry.After(time.Now()) {
			t.Errorf("lease not released: %+v", l)
		}
		// A cancelled context stops SweepOnce before it touches anything.
		rep, err := sw.SweepOnce(ctx)
		if !errors.Is(err, context.Canceled) || rep.Rows() != 0 || e.count(t, "") != left {
			t.Errorf("SweepOnce with a cancelled context: %v, %v", rep, err)
		}
	})
}
