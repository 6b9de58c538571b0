package sweeper_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/sweeper"
)

// Environment variables of TestHeavySweep: the number of expired rows
// (unset, the test is skipped) and the number of workers loading and
// updating live sessions meanwhile (default 32; 0 measures the sweep
// alone).
const (
	EnvSweepRows    = "VISITSESSION_SWEEP_ROWS"
	EnvSweepWorkers = "VISITSESSION_SWEEP_WORKERS"
)

const (
	heavyLive     = 10_000
	heavyBaseline = 2 * time.Second
	heavyWarmup   = 500 * time.Millisecond
)

// TestHeavySweep sweeps a large backlog of expired rows, with each policy
// and default options except for no pause between batches (the settings
// for catching up), while workers load and update random live sessions,
// and checks that no live session is lost or cleared and that no worker
// sees an error. It logs the insert and sweep rates and the load latency
// (p50, p99) before, during and after the sweep.
func TestHeavySweep(t *testing.T) {
	n := 0
	if v := os.Getenv(EnvSweepRows); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			t.Fatalf("%s=%q: want a number of rows", EnvSweepRows, v)
		}
	}
	if n == 0 {
		t.Skip("heavy test: set " + EnvSweepRows + " to run")
	}
	workers := 32
	if v := os.Getenv(EnvSweepWorkers); v != "" {
		var err error
		if workers, err = strconv.Atoi(v); err != nil || workers < 0 {
			t.Fatalf("%s=%q: want a number of workers", EnvSweepWorkers, v)
		}
	}
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		for _, p := range policies {
			t.Run(p.name, func(t *testing.T) { heavySweep(t, tg, p.opts, n, workers) })
		}
	})
}

// latencies collects the durations of the loads of one phase.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d...)
	l.mu.Unlock()
}

func (l *latencies) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return "no loads"
	}
	slices.Sort(l.d)
	at := func(p int) time.Duration { return l.d[min(len(l.d)-1, len(l.d)*p/100)] }
	return fmt.Sprintf("%d loads, p50 %v, p99 %v", len(l.d), at(50).Round(time.Microsecond), at(99).Round(time.Microsecond))
}

func heavySweep(t *testing.T, tg *testdb.Target, opts sweeper.Options, n, workers int) {
	e := newEnv(t, tg)
	ctx := context.Background()
	start := time.Now()
	// Expired an hour ago and earlier, one millisecond apart.
	fillExpired(t, e, n, time.Now().Add(-time.Hour))
	e.bulk(t, tg.DB, "live", heavyLive, false, func(int) time.Time { return time.Now().Add(time.Hour) })
	t.Logf("inserted %d expired and %d live rows in %v (%.0f rows/s)", n, heavyLive, time.Since(start).Round(time.Millisecond),
		float64(n+heavyLive)/time.Since(start).Seconds())

	st, err := tg.Dialect.Statements(e.tab)
	if err != nil {
		t.Fatal(err)
	}
	wdb := tg.Open(t)
	wdb.SetMaxIdleConns(workers)
	// Phases of the workers: warm-up (pool filling, latencies dropped),
	// before the sweep, during it, after it.
	const (
		warmup = iota
		before
		during
		after
	)
	var (
		byPhase  [4]latencies
		phase    atomic.Int32
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		failures atomic.Int64
		firstErr = make(chan error, 1)
	)
	fail := func(err error) {
		failures.Add(1)
		select {
		case firstErr <- err:
		default:
		}
	}
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var mine []time.Duration
			minePhase := int32(warmup)
			flush := func() {
				byPhase[minePhase].add(mine)
				mine = mine[:0]
			}
			defer flush()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if p := phase.Load(); p != minePhase {
					flush()
					minePhase = p
				}
				k := key(fmt.Sprint("live", rng.IntN(heavyLive)))
				now := time.Now()
				var data []byte
				var created, expiry any
				var version int64
				t0 := time.Now()
				err := wdb.QueryRowContext(ctx, st.Load, k, e.enc(now)).Scan(&data, &created, &expiry, &version)
				mine = append(mine, time.Since(t0))
				switch {
				case errors.Is(err, sql.ErrNoRows):
					fail(fmt.Errorf("live session %s lost", k))
					continue
				case err != nil:
					fail(fmt.Errorf("load: %w", err))
					continue
				case data == nil:
					fail(fmt.Errorf("live session %s cleared", k))
					continue
				}
				res, err := wdb.ExecContext(ctx, st.UpdateAny, data, e.enc(now.Add(time.Hour)), e.enc(now.Add(time.Hour)), k, e.enc(now))
				if err != nil {
					fail(fmt.Errorf("update: %w", err))
					continue
				}
				if a, err := res.RowsAffected(); err != nil || a != 1 {
					fail(fmt.Errorf("update of live session %s changed %d rows (%v)", k, a, err))
				}
			}
		})
	}
	pause := func(d time.Duration) {
		if workers > 0 {
			time.Sleep(d)
		}
	}
	pause(heavyWarmup)
	phase.Store(before)
	pause(heavyBaseline)
	phase.Store(during)
	// Catch-up settings: default batches, no pause.
	opts.Pause = -1
	sw := e.newSweeper(t, tg.Open(t), opts)
	rep, err := sw.SweepOnce(ctx)
	phase.Store(after)
	pause(heavyBaseline)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	t.Logf("swept: %v; %.0f rows/s", rep, rep.RowsPerSecond())
	t.Logf("load latency before the sweep: %v", &byPhase[before])
	t.Logf("load latency during the sweep: %v", &byPhase[during])
	t.Logf("load latency after the sweep:  %v", &byPhase[after])
	if f := failures.Load(); f > 0 {
		t.Errorf("%d worker failures, the first: %v", f, <-firstErr)
	}
	if rep.Rows() != int64(n) {
		t.Errorf("%d rows swept, want %d", rep.Rows(), n)
	}
	cutoff := e.enc(time.Now())
	if opts.ClearData {
		if left := e.count(t, "{expiry} <= ? AND {data} IS NOT NULL", cutoff); left != 0 {
			t.Errorf("%d expired rows still hold data", left)
		}
	} else if left := e.count(t, "{expiry} <= ?", cutoff); left != 0 {
		t.Errorf("%d expired rows left", left)
	}
	if live := e.count(t, "{expiry} > ? AND {data} IS NOT NULL", cutoff); live != heavyLive {
		t.Errorf("%d live sessions with data, want %d", live, heavyLive)
	}
}

// fillExpired inserts n rows that expired at base and then every
// millisecond before, with data, generating them on the server where the
// database can (generate_series, the Sequence engine of MariaDB, a
// recursive CTE), and with multi-row INSERTs otherwise.
func fillExpired(t *testing.T, e *env, n int, base time.Time) {
	t.Helper()
	q := func(s string) string { return e.tg.Dialect.Quote(s) }
	cols := fmt.Sprintf("%s (%s, %s, %s, %s, %s)", q(e.tab.Name), q(e.tab.Key), q(e.tab.Data), q(e.tab.Created), q(e.tab.Expiry), q(e.tab.Version))
	data := []byte("session-data;session-data;session-data;session-data;session-data;")
	ctx := context.Background()
	var err error
	switch e.tg.Kind {
	case "postgres":
		// Keys are visit.HashToken("old<i>"), as bulk makes them.
		_, err = e.db.ExecContext(ctx, "INSERT INTO "+cols+
			" SELECT substr(encode(sha256(convert_to('old' || g, 'UTF8')), 'hex'), 1, 40), $1::bytea,"+
			" $2::timestamptz - interval '1 day', $2::timestamptz - g * interval '1 millisecond', 1"+
			" FROM generate_series(0, $3::int - 1) AS g", data, e.enc(base), n)
	case "mysql":
		for start := 0; start < n && err == nil; start += 100_000 {
			end := min(n, start+100_000) - 1
			_, err = e.db.ExecContext(ctx, fmt.Sprintf("INSERT INTO "+cols+
				" SELECT LEFT(SHA2(CONCAT('old', seq), 256), 40), ?, CAST(? AS DATETIME(6)) - INTERVAL 1 DAY,"+
				" CAST(? AS DATETIME(6)) - INTERVAL (seq * 1000) MICROSECOND, 1 FROM seq_%d_to_%d", start, end),
				data, e.enc(base), e.enc(base))
		}
	case "sqlite":
		_, err = e.db.ExecContext(ctx, "WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g + 1 < ?3)"+
			" INSERT INTO "+cols+" SELECT lower(hex(randomblob(20))), ?1, ?2 - 86400000000, ?2 - g * 1000, 1 FROM s",
			data, e.enc(base), n)
	default:
		err = fmt.Errorf("no generator for %s", e.tg.Kind)
	}
	if err != nil {
		t.Logf("generating rows on the server failed (%v); inserting them from the client", err)
		if _, derr := e.db.ExecContext(ctx, "DELETE FROM "+q(e.tab.Name)); derr != nil {
			t.Fatal(derr)
		}
		e.bulk(t, e.db, "old", n, false, func(i int) time.Time { return base.Add(-time.Duration(i) * time.Millisecond) })
	}
	if got := e.count(t, ""); got != n {
		t.Fatalf("%d rows inserted, want %d", got, n)
	}
}
