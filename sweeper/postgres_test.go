package sweeper_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/sweeper"
	"github.com/visitsession/visitsession/visit"
)

// TestPostgresPartitionedTable sweeps a hash-partitioned visit table. The
// PostgreSQL statements reach rows by ctid, which repeats across
// partitions: a live row may sit at the ctid of an expired row in the
// other partition, and must survive.
func TestPostgresPartitionedTable(t *testing.T) {
	if only := os.Getenv(testdb.EnvOnly); only != "" && only != "postgres" {
		t.Skipf("PostgreSQL only, and %s=%s", testdb.EnvOnly, only)
	}
	checkLeaks(t)
	tg := testdb.Get(t, "postgres")
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			e := &env{tg: tg, tab: tg.Table(t), db: tg.DB}
			q := func(s string) string { return tg.Dialect.Quote(s) }
			name := e.tab.Name
			for _, stmt := range []string{
				"CREATE TABLE " + q(name) + " (" + q(e.tab.Key) + " VARCHAR(40) NOT NULL, " + q(e.tab.Data) + " BYTEA NULL, " +
					q(e.tab.Created) + " TIMESTAMPTZ NOT NULL, " + q(e.tab.Expiry) + " TIMESTAMPTZ NOT NULL, " +
					q(e.tab.Version) + " BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (" + q(e.tab.Key) + ")) PARTITION BY HASH (" + q(e.tab.Key) + ")",
				"CREATE TABLE " + q(name+"_p0") + " PARTITION OF " + q(name) + " FOR VALUES WITH (MODULUS 2, REMAINDER 0)",
				"CREATE TABLE " + q(name+"_p1") + " PARTITION OF " + q(name) + " FOR VALUES WITH (MODULUS 2, REMAINDER 1)",
				"CREATE INDEX " + q(e.tab.IndexName()) + " ON " + q(name) + " (" + q(e.tab.Expiry) + ")",
			} {
				if _, err := e.db.ExecContext(context.Background(), stmt); err != nil {
					t.Fatal(err)
				}
			}
			if in, err := visit.Inspect(context.Background(), e.db, tg.Dialect, e.tab); err != nil || !in.Exists || len(in.Missing) > 0 {
				t.Fatalf("inspect: %+v, %v", in, err)
			}
			// Alternate expired and live rows, so that both partitions hold
			// both kinds at every ctid.
			for i := range 400 {
				expiry := now.Add(time.Hour)
				if i%2 == 0 {
					expiry = now.Add(-time.Duration(i+1) * time.Second)
				}
				e.insert(t, key(fmt.Sprint("row", i)), []byte("data"), expiry)
			}
			opts := p.opts
			opts.BatchSize, opts.Pause, opts.Clock = 30, -1, fixedClock
			rep, err := e.newSweeper(t, e.db, opts).SweepOnce(context.Background())
			if err != nil || rep.Rows() != 200 {
				t.Errorf("got %v, %v; want 200 rows swept", rep, err)
			}
			if got := e.count(t, "{expiry} > ? AND {data} IS NOT NULL", e.enc(now)); got != 200 {
				t.Errorf("%d live rows with data, want 200", got)
			}
			left := e.count(t, "{expiry} <= ?", e.enc(now))
			if p.opts.ClearData {
				left = e.count(t, "{expiry} <= ? AND {data} IS NOT NULL", e.enc(now))
			}
			if left != 0 {
				t.Errorf("%d expired rows left", left)
			}
		})
	}
}

// TestPostgresConnectionReset checks that the planner settings a sweep
// turns off on its connection are back to their defaults when the
// connection returns to the pool, after a run that swept rows and after a
// run whose batch failed.
func TestPostgresConnectionReset(t *testing.T) {
	if only := os.Getenv(testdb.EnvOnly); only != "" && only != "postgres" {
		t.Skipf("PostgreSQL only, and %s=%s", testdb.EnvOnly, only)
	}
	checkLeaks(t)
	tg := testdb.Get(t, "postgres")
	// The connection's own default for one of the settings, a run-time
	// parameter of the DSN, is what the reset goes back to.
	sep := "?"
	if strings.Contains(tg.DSN, "?") {
		sep = "&"
	}
	db := openDSN(t, "pgx", tg.DSN+sep+"enable_sort=off")
	db.SetMaxOpenConns(1)
	e := &env{tg: tg, tab: tg.CreateTable(t), db: db}
	settings := func() string {
		t.Helper()
		var s string
		err := db.QueryRowContext(context.Background(), "SELECT current_setting('enable_seqscan') || current_setting('enable_bitmapscan') || "+
			"current_setting('enable_sort') || current_setting('enable_hashjoin') || current_setting('enable_mergejoin')").Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := settings(); got != "ononoffonon" {
		t.Fatalf("settings before the sweep: %s", got)
	}
	for i := range 50 {
		e.insert(t, key(fmt.Sprint("expired", i)), []byte("data"), now.Add(-time.Duration(i+1)*time.Second))
	}
	sw := e.newSweeper(t, db, sweeper.Options{BatchSize: 7, Pause: -1, Clock: fixedClock})
	if rep, err := sw.SweepOnce(context.Background()); err != nil || rep.Deleted != 50 || rep.Batches != 8 {
		t.Fatalf("got %v, %v; want 50 rows deleted in 8 batches", rep, err)
	}
	if got := settings(); got != "ononoffonon" {
		t.Errorf("settings after a sweep: %s, want the connection's defaults", got)
	}
	// A failing batch: the table is gone.
	if _, err := db.ExecContext(context.Background(), "DROP TABLE "+tg.Dialect.Quote(e.tab.Name)); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.SweepOnce(context.Background()); err == nil {
		t.Fatal("sweep of a dropped table succeeded")
	}
	if got := settings(); got != "ononoffonon" {
		t.Errorf("settings after a failed sweep: %s, want the connection's defaults", got)
	}
	if s := db.Stats(); s.InUse != 0 {
		t.Errorf("%d connections in use after the sweeps", s.InUse)
	}
}

// TestPostgresOneConnection sweeps with a pool of one connection and a
// lease renewed between batches: the run holds the connection for its
// batches, so the renewals must go through it too.
func TestPostgresOneConnection(t *testing.T) {
	if only := os.Getenv(testdb.EnvOnly); only != "" && only != "postgres" {
		t.Skipf("PostgreSQL only, and %s=%s", testdb.EnvOnly, only)
	}
	checkLeaks(t)
	tg := testdb.Get(t, "postgres")
	db := openDSN(t, "pgx", tg.DSN)
	db.SetMaxOpenConns(1)
	e := &env{tg: tg, tab: tg.CreateTable(t), db: db}
	for i := range 50 {
		e.insert(t, key(fmt.Sprint("expired", i)), []byte("data"), now.Add(-time.Duration(i+1)*time.Second))
	}
	// Each reading of the clock moves it two seconds: with a lease of
	// three, every batch renews it first.
	var mu sync.Mutex
	at := now
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		at = at.Add(2 * time.Second)
		return at
	}
	sw := e.newSweeper(t, db, sweeper.Options{BatchSize: 7, Pause: -1, Clock: clock, LeaseTTL: 3 * time.Second, BatchTimeout: 5 * time.Second})
	rep, err := sw.SweepOnce(context.Background())
	if err != nil || rep.Deleted != 50 {
		t.Fatalf("got %v, %v; want 50 rows deleted", rep, err)
	}
	if s := db.Stats(); s.InUse != 0 || s.WaitCount != 0 {
		t.Errorf("pool after the sweep: %d in use, %d waits for a connection", s.InUse, s.WaitCount)
	}
}
