package galera_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/sweeper"
	"github.com/visitsession/visitsession/visit"
)

// storedRow is one row of the visit table, for bulk inserts and checks.
type storedRow struct {
	key     string
	data    []byte
	created time.Time
	expiry  time.Time
	version int64
}

// insertRows writes rows through node 1 in multi-row INSERTs.
func insertRows(t testing.TB, c *cluster, tab visit.Table, rows []storedRow) {
	t.Helper()
	d := dialect.MySQL()
	const chunk = 500
	for len(rows) > 0 {
		n := min(chunk, len(rows))
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO %s (%s, %s, %s, %s, %s) VALUES ", d.Quote(tab.Name),
			d.Quote(tab.Key), d.Quote(tab.Data), d.Quote(tab.Created), d.Quote(tab.Expiry), d.Quote(tab.Version))
		args := make([]any, 0, 5*n)
		for i, r := range rows[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?)")
			args = append(args, r.key, r.data, d.EncodeTime(r.created), d.EncodeTime(r.expiry), r.version)
		}
		if _, err := c.checks[0].ExecContext(context.Background(), b.String(), args...); err != nil {
			t.Fatalf("insert rows: %v", err)
		}
		rows = rows[n:]
	}
}

// readRows returns every row of tab but the sweeper's lease, by key, as
// node i sees it after every committed write.
func readRows(t *testing.T, c *cluster, i int, tab visit.Table) map[string]storedRow {
	t.Helper()
	d := dialect.MySQL()
	rows, err := c.checks[i].QueryContext(context.Background(), fmt.Sprintf("SELECT %s, %s, %s, %s FROM %s WHERE %s <> ?",
		d.Quote(tab.Key), d.Quote(tab.Data), d.Quote(tab.Expiry), d.Quote(tab.Version), d.Quote(tab.Name), d.Quote(tab.Key)),
		sweeper.LeaseKey)
	if err != nil {
		t.Fatalf("read rows on node %d: %v", i+1, err)
	}
	defer rows.Close()
	out := map[string]storedRow{}
	for rows.Next() {
		var r storedRow
		var expiry any
		if err := rows.Scan(&r.key, &r.data, &expiry, &r.version); err != nil {
			t.Fatal(err)
		}
		if r.expiry, err = d.DecodeTime(expiry); err != nil {
			t.Fatal(err)
		}
		out[r.key] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSweepersOnThreeNodes runs a sweeper on each of the three nodes at
// once, each in its own instance with its own pool, over a table of
// expired and live sessions. Every expired row must be swept exactly once
// (the rows the three report add up to the expired rows), no run may fail,
// and no live row may change.
//
// With the lease, the sweepers take turns through the lease row, which
// replicates like any row (GET_LOCK would be local to one node). Without
// it, all three work at once: batches on different nodes that pick the
// same rows fail certification, are retried, and must still not count a
// row twice.
func TestSweepersOnThreeNodes(t *testing.T) {
	c := getCluster(t)
	for _, tc := range []struct {
		name  string
		opts  sweeper.Options
		clear bool
	}{
		{"delete-with-lease", sweeper.Options{}, false},
		{"delete-without-lease", sweeper.Options{LeaseTTL: -1, MaxRetries: 50}, false},
		{"clear-with-lease", sweeper.Options{ClearData: true, DeleteAfter: sweeper.Never}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sweepThreeNodes(t, c, tc.opts, tc.clear)
		})
	}
}

func sweepThreeNodes(t *testing.T, c *cluster, opts sweeper.Options, clear bool) {
	const expired, live = 2000, 300
	tab := c.table(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	var rows []storedRow
	for i := range expired {
		rows = append(rows, storedRow{key: fmt.Sprintf("e%039d", i), data: []byte("expired"),
			created: now.Add(-2 * time.Hour), expiry: now.Add(-time.Hour + time.Duration(i)*time.Millisecond), version: 1})
	}
	for i := range live {
		rows = append(rows, storedRow{key: fmt.Sprintf("l%039d", i), data: []byte(fmt.Sprintf("live %d", i)),
			created: now.Add(-time.Hour), expiry: now.Add(time.Hour + time.Duration(i)*time.Millisecond), version: int64(2 + i%5)})
	}
	insertRows(t, c, tab, rows)
	before := readRows(t, c, 0, tab)

	opts.BatchSize = 100
	opts.Interval = 20 * time.Millisecond
	opts.Jitter = -1
	opts.Logger = discard
	var mu sync.Mutex
	// report is a run's report and when it arrived.
	type report struct {
		sweeper.Report
		at time.Time
	}
	var reports [3][]report
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for i := range 3 {
		o := opts
		o.Hook = func(r sweeper.Report) {
			mu.Lock()
			reports[i] = append(reports[i], report{r, time.Now()})
			mu.Unlock()
		}
		sw, err := sweeper.New(c.open(t, i), dialect.MySQL(), tab, o)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = sw.Run(ctx)
		}()
	}
	// Let them run until nothing is left to sweep, and some more.
	start := time.Now()
	left := func() int {
		n := 0
		for _, r := range readRows(t, c, 0, tab) {
			if !r.expiry.After(now) && (!clear || r.data != nil) {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(2 * time.Minute)
	for left() > 0 {
		if time.Now().After(deadline) {
			cancel()
			wg.Wait()
			t.Fatalf("expired rows left after two minutes: %d", left())
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	stopped := time.Now()
	cancel()
	wg.Wait()

	var swept int64
	for i, reps := range reports {
		var n int64
		runs, skipped, batches, errs, interrupted := 0, 0, 0, 0, 0
		for _, r := range reps {
			runs++
			if r.Skipped {
				skipped++
			}
			switch {
			case r.Err != nil && !r.at.Before(stopped):
				// Stopped by the end of the test, possibly while waiting
				// to retry: the report may then carry the error that
				// was to be retried.
				interrupted++
			case r.Err != nil:
				t.Errorf("node %d: run failed: %v", i+1, r.Err)
			}
			n += r.Rows()
			batches += r.Batches
			errs += r.Errors
		}
		swept += n
		t.Logf("node %d: %d runs (%d skipped: lease held elsewhere; %d interrupted by the end of the test), %d rows in %d batches, %d failed statement attempts",
			i+1, runs, skipped, interrupted, n, batches, errs)
	}
	t.Logf("%d expired rows swept by three sweepers in %v", expired, took.Round(time.Millisecond))
	if swept != expired {
		t.Errorf("the sweepers report %d rows swept, want exactly the %d expired rows", swept, expired)
	}

	for i := range 3 {
		after := readRows(t, c, i, tab)
		for key, b := range before {
			a, ok := after[key]
			isLive := b.expiry.After(now)
			switch {
			case isLive && (!ok || !bytes.Equal(a.data, b.data) || a.version != b.version || !a.expiry.Equal(b.expiry)):
				t.Fatalf("node %d: a live row was touched: before %+v, after %+v (found %v)", i+1, b, a, ok)
			case !isLive && clear && (!ok || a.data != nil || a.version != b.version):
				t.Fatalf("node %d: an expired row was not cleared, or was removed: %+v (found %v)", i+1, a, ok)
			case !isLive && !clear && ok:
				t.Fatalf("node %d: an expired row was not deleted: %+v", i+1, a)
			}
		}
		if want := live + map[bool]int{true: expired}[clear]; len(after) != want {
			t.Fatalf("node %d: %d rows after sweeping, want %d", i+1, len(after), want)
		}
	}
	if opts.LeaseTTL >= 0 {
		checkLeaseReleased(t, c, tab)
	}
}

// checkLeaseReleased checks that the lease row exists and has ended.
func checkLeaseReleased(t *testing.T, c *cluster, tab visit.Table) {
	t.Helper()
	d := dialect.MySQL()
	var expiry any
	var holder []byte
	err := c.checks[0].QueryRowContext(context.Background(), fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s = ?",
		d.Quote(tab.Data), d.Quote(tab.Expiry), d.Quote(tab.Name), d.Quote(tab.Key)), sweeper.LeaseKey).Scan(&holder, &expiry)
	if err == sql.ErrNoRows {
		t.Fatal("no lease row: the sweepers did not use the lease")
	}
	if err != nil {
		t.Fatal(err)
	}
	end, err := d.DecodeTime(expiry)
	if err != nil {
		t.Fatal(err)
	}
	if end.After(time.Now().Add(time.Second)) {
		t.Errorf("the lease of %q runs until %v after every sweeper stopped: not released", holder, end)
	}
}
