package sweeper_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/sweeper"
)

// outcome is what a sweep should leave of a row.
type outcome int

const (
	kept    outcome = iota // row and data untouched
	cleared                // row kept, data NULL
	deleted                // row gone
)

func (o outcome) String() string { return [...]string{"kept", "cleared", "deleted"}[o] }

// seed is one row of a policy test, its expiry relative to now.
type seed struct {
	name   string
	expiry time.Duration
	noData bool
}

// seeds cover the boundaries of every policy: live rows, a row expiring
// exactly now (expired: a session is live while expiry > now), rows just
// inside and outside a one-hour retention, and rows from long ago.
var seeds = []seed{
	{name: "live-1h", expiry: time.Hour},
	{name: "live-1us", expiry: time.Microsecond},
	{name: "expires-now", expiry: 0},
	{name: "expired-1m", expiry: -time.Minute},
	{name: "expired-1m-empty", expiry: -time.Minute, noData: true},
	{name: "expired-59m", expiry: -59 * time.Minute},
	{name: "expired-1h", expiry: -time.Hour},
	{name: "expired-2h", expiry: -2 * time.Hour},
	{name: "expired-2h-empty", expiry: -2 * time.Hour, noData: true},
	{name: "expired-30d", expiry: -30 * 24 * time.Hour},
	{name: "epoch", expiry: time.Unix(0, 0).Sub(now)},
}

func TestPolicies(t *testing.T) {
	tests := []struct {
		name string
		opts sweeper.Options
		// want maps a seed name to its outcome; missing names are kept.
		want             map[string]outcome
		deleted, cleared int64
	}{
		{
			name: "delete at expiry by default",
			opts: sweeper.Options{},
			want: map[string]outcome{
				"expires-now": deleted, "expired-1m": deleted, "expired-1m-empty": deleted, "expired-59m": deleted,
				"expired-1h": deleted, "expired-2h": deleted, "expired-2h-empty": deleted, "expired-30d": deleted, "epoch": deleted,
			},
			deleted: 9,
		},
		{
			name: "delete after retention",
			opts: sweeper.Options{DeleteAfter: time.Hour},
			want: map[string]outcome{
				"expired-1h": deleted, "expired-2h": deleted, "expired-2h-empty": deleted, "expired-30d": deleted, "epoch": deleted,
			},
			deleted: 5,
		},
		{
			name: "clear and keep rows",
			opts: sweeper.Options{ClearData: true, DeleteAfter: sweeper.Never},
			want: map[string]outcome{
				"expires-now": cleared, "expired-1m": cleared, "expired-1m-empty": cleared, "expired-59m": cleared,
				"expired-1h": cleared, "expired-2h": cleared, "expired-2h-empty": cleared, "expired-30d": cleared, "epoch": cleared,
			},
			cleared: 7,
		},
		{
			name: "clear then delete after retention",
			opts: sweeper.Options{ClearData: true, DeleteAfter: time.Hour},
			want: map[string]outcome{
				"expires-now": cleared, "expired-1m": cleared, "expired-1m-empty": cleared, "expired-59m": cleared,
				"expired-1h": deleted, "expired-2h": deleted, "expired-2h-empty": deleted, "expired-30d": deleted, "epoch": deleted,
			},
			deleted: 5, cleared: 3,
		},
	}
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnv(t, tg)
				for _, s := range seeds {
					data := []byte("data of " + s.name)
					if s.noData {
						data = nil
					}
					e.insert(t, key(s.name), data, now.Add(s.expiry))
				}
				opts := tt.opts
				opts.Clock = fixedClock
				sw := e.newSweeper(t, e.db, opts)
				rep, err := sw.SweepOnce(context.Background())
				if err != nil {
					t.Fatalf("SweepOnce: %v", err)
				}
				if rep.Deleted != tt.deleted || rep.Cleared != tt.cleared || rep.Skipped || rep.Errors != 0 {
					t.Errorf("report %+v, want deleted %d cleared %d", rep, tt.deleted, tt.cleared)
				}
				for _, s := range seeds {
					r := e.get(t, key(s.name))
					orig := []byte("data of " + s.name)
					got := kept
					switch {
					case !r.found:
						got = deleted
					case r.data == nil && !s.noData:
						got = cleared
					case !s.noData && !bytes.Equal(r.data, orig), s.noData && r.data != nil:
						t.Errorf("%s: data changed to %q", s.name, r.data)
					}
					want := tt.want[s.name]
					if s.noData && want == cleared {
						want = kept // a row without data looks the same either way
					}
					if got != want {
						t.Errorf("%s: %v, want %v", s.name, got, want)
					}
					if r.found && !r.expiry.Equal(now.Add(s.expiry)) {
						t.Errorf("%s: expiry moved from %v to %v", s.name, now.Add(s.expiry), r.expiry)
					}
				}
				// A second run finds nothing and leaves the lease row alone.
				rep, err = sw.SweepOnce(context.Background())
				if err != nil || rep.Rows() != 0 {
					t.Errorf("second run: %v, %v; want nothing swept", rep, err)
				}
				if l := e.get(t, sweeper.LeaseKey); !l.found || string(l.data) != sw.Owner() || l.expiry.After(now) {
					t.Errorf("lease row after release: %+v, want held by %q, ended", l, sw.Owner())
				}
			})
		}
	})
}

// TestBatches checks that batches walk the expiry index correctly across
// runs of equal expiries longer than a batch, and across rows cleared
// before, and that a run stops at the first batch smaller than BatchSize.
func TestBatches(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		for _, clearData := range []bool{false, true} {
			t.Run(fmt.Sprintf("clear=%v", clearData), func(t *testing.T) {
				e := newEnv(t, tg)
				// 12 rows share one expiry; 11 more are spread out; 15
				// already-cleared rows sit among them.
				same := now.Add(-time.Hour)
				e.bulk(t, e.db, "same", 12, false, func(int) time.Time { return same })
				e.bulk(t, e.db, "spread", 11, false, func(i int) time.Time { return now.Add(-time.Duration(i*7) * time.Minute) })
				e.bulk(t, e.db, "empty", 15, true, func(i int) time.Time { return now.Add(-time.Duration(i*5) * time.Minute) })
				e.bulk(t, e.db, "live", 7, false, func(i int) time.Time { return now.Add(time.Duration(i+1) * time.Minute) })
				opts := sweeper.Options{BatchSize: 5, Pause: -1, Clock: fixedClock}
				wantBatches := 8 // 38 deleted in batches of 5, the last of 3
				if clearData {
					opts.ClearData, opts.DeleteAfter = true, sweeper.Never
					wantBatches = 5 // 23 cleared, the last batch of 3
				}
				rep, err := e.newSweeper(t, e.db, opts).SweepOnce(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if rep.Batches != wantBatches {
					t.Errorf("batches %d, want %d (%v)", rep.Batches, wantBatches, rep)
				}
				if clearData {
					if rep.Cleared != 23 || e.count(t, "{data} IS NOT NULL AND {expiry} <= ?", e.enc(now)) != 0 || e.count(t, "") != 45 {
						t.Errorf("report %v; want 23 cleared, no expired data left, 45 rows", rep)
					}
				} else if rep.Deleted != 38 || e.count(t, "") != 7 {
					t.Errorf("report %v; want 38 deleted, 7 rows left", rep)
				}
				if got := e.count(t, "{data} IS NOT NULL AND {expiry} > ?", e.enc(now)); got != 7 {
					t.Errorf("%d live rows with data, want 7", got)
				}
			})
		}
	})
}

// TestBatchExactMultiple checks that a backlog that is an exact multiple
// of the batch size ends with one empty batch.
func TestBatchExactMultiple(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newEnv(t, tg)
		e.bulk(t, e.db, "x", 20, false, func(i int) time.Time { return now.Add(-time.Duration(i+1) * time.Second) })
		rep, err := e.newSweeper(t, e.db, sweeper.Options{BatchSize: 10, Pause: -1, Clock: fixedClock}).SweepOnce(context.Background())
		if err != nil || rep.Deleted != 20 || rep.Batches != 3 {
			t.Errorf("got %v, %v; want 20 deleted in 3 batches", rep, err)
		}
	})
}

// TestObservability checks the hook and the log records of a run.
func TestObservability(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newEnv(t, tg)
		e.bulk(t, e.db, "x", 30, false, func(i int) time.Time { return now.Add(-time.Minute) })
		var logs logBuffer
		rec := newHookRecorder()
		sw := e.newSweeper(t, e.db, sweeper.Options{
			BatchSize: 25, Clock: fixedClock, Hook: rec.hook,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
		rep, err := sw.SweepOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := rec.all()
		if len(got) != 1 || got[0].Deleted != 30 || got[0].Batches != 2 || got[0].Duration <= 0 || !got[0].Started.Equal(now) {
			t.Errorf("hook got %+v; want one report of 30 rows in 2 batches", got)
		}
		if got[0].String() != rep.String() || !strings.HasPrefix(rep.String(), "deleted 30, cleared 0 in 2 batches, 0 errors, ") {
			t.Errorf("String() = %q", rep.String())
		}
		out := logs.String()
		for _, want := range []string{
			`msg="sweeper: batch" table=` + e.tab.Name + ` phase=delete rows=25`,
			`msg="sweeper: batch" table=` + e.tab.Name + ` phase=delete rows=5`,
			`msg="sweeper: swept" table=` + e.tab.Name + ` deleted=30 cleared=0 batches=2 errors=0`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %q:\n%s", want, out)
			}
		}
	})
}

// TestFailedRunIsReported checks that a run that fails with a permanent
// error is not retried, is reported, and that Run keeps going.
func TestFailedRunIsReported(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		checkLeaks(t)
		tab := tg.Table(t) // never created
		rec := newHookRecorder()
		var logs logBuffer
		sw, err := sweeper.New(tg.DB, tg.Dialect, tab, sweeper.Options{
			Interval: 5 * time.Millisecond, Jitter: -1, Hook: rec.hook,
			Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := sw.SweepOnce(context.Background())
		if err == nil || rep.Errors != 1 || !errors.Is(rep.Err, err) || !strings.Contains(err.Error(), "acquire lease on "+tab.Name) {
			t.Fatalf("SweepOnce on a missing table: %v, %v; want one unretried error", rep, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- sw.Run(ctx) }()
		for len(rec.all()) < 4 {
			select {
			case <-rec.notify:
			case <-time.After(10 * time.Second):
				t.Fatal("Run stopped reporting")
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		for _, r := range rec.all() {
			if r.Err == nil && !r.Skipped {
				t.Errorf("report without error: %v", r)
			}
		}
		if !strings.Contains(logs.String(), `level=ERROR msg="sweeper: run failed"`) {
			t.Errorf("no error logged:\n%s", logs.String())
		}
	})
}
