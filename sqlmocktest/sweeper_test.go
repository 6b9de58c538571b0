package sqlmocktest

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/sweeper"
)

// newSweeper returns a sweeper on the mock with the fixed clock, a batch
// of 2 rows, no pause and no lease unless opts say otherwise.
func (m *mocked) newSweeper(opts sweeper.Options) (*sweeper.Sweeper, dialect.SweepStatements) {
	m.t.Helper()
	if opts.BatchSize == 0 {
		opts.BatchSize = 2
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = -1
	}
	opts.Pause = -1
	opts.Clock = func() time.Time { return epoch }
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	sw, err := sweeper.New(m.db, m.d, m.tab, opts)
	if err != nil {
		m.t.Fatal(err)
	}
	st, err := m.d.Sweep(m.tab, opts.BatchSize)
	if err != nil {
		m.t.Fatal(err)
	}
	return sw, st
}

// expiries is the answer of a RETURNING batch that changed n rows.
func (m *mocked) expiries(n int) *sqlmock.Rows {
	rows := sqlmock.NewRows([]string{"expiry"})
	for i := range n {
		rows.AddRow(m.enc(epoch.Add(-time.Duration(n-i) * time.Minute)))
	}
	return rows
}

var zeroTime = time.Time{}

// summary is the answer of a Summary batch that changed n rows, the
// latest expiring at last.
func (m *mocked) summary(n int, last time.Time) *sqlmock.Rows {
	rows := sqlmock.NewRows([]string{"count", "max"})
	if n == 0 {
		return rows.AddRow(int64(0), nil)
	}
	return rows.AddRow(int64(n), m.enc(last))
}

// expectSetup expects the statement that sets up the connection a sweep
// holds, where the dialect has one, and returns its calls.
func (m *mocked) expectSetup(sw dialect.SweepStatements) []string {
	if sw.Setup == "" {
		return nil
	}
	m.mock.ExpectExec(sw.Setup).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
	return []string{"exec " + sw.Setup}
}

// expectReset expects the statement that resets that connection before
// it goes back to the pool.
func (m *mocked) expectReset(sw dialect.SweepStatements) []string {
	if sw.Reset == "" {
		return nil
	}
	m.mock.ExpectExec(sw.Reset).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
	return []string{"exec " + sw.Reset}
}

// expectDeleteBatch expects one delete batch from from up to cutoff that
// deletes n rows, and returns its calls. Where the dialect asks for an
// isolation level, the batch is a transaction. Summary and Returning
// batches are one query; on databases with neither, a bound query comes
// first: bound is the expiry it answers, or the zero time for no row, and
// the DELETE runs up to it.
func (m *mocked) expectDeleteBatch(sw dialect.SweepStatements, from, cutoff, bound time.Time, n int) []string {
	var trips []string
	tx := sw.Isolation != sql.LevelDefault
	if tx {
		m.mock.ExpectBegin()
		trips = append(trips, "begin")
	}
	switch {
	case sw.Summary:
		m.mock.ExpectQuery(sw.Delete).WithArgs(m.enc(from), m.enc(cutoff), sweeper.LeaseKey).WillReturnRows(m.summary(n, bound))
		trips = append(trips, "query "+sw.Delete)
	case sw.Returning:
		m.mock.ExpectQuery(sw.Delete).WithArgs(m.enc(from), m.enc(cutoff), sweeper.LeaseKey).WillReturnRows(m.expiries(n))
		trips = append(trips, "query "+sw.Delete)
	default:
		rows := sqlmock.NewRows([]string{"expiry"})
		to := cutoff
		if !bound.IsZero() {
			rows.AddRow(m.enc(bound))
			to = bound
		}
		m.mock.ExpectQuery(sw.DeleteBound).WithArgs(m.enc(from), m.enc(cutoff), sweeper.LeaseKey).WillReturnRows(rows)
		m.mock.ExpectExec(sw.Delete).WithArgs(m.enc(from), m.enc(to), sweeper.LeaseKey).WillReturnResult(sqlmock.NewResult(0, int64(n)))
		trips = append(trips, "query "+sw.DeleteBound, "exec "+sw.Delete)
	}
	if tx {
		m.mock.ExpectCommit()
		trips = append(trips, "commit")
	}
	return trips
}

// TestSweepUnderLease pins a whole run: take the lease, delete in batches
// until no more rows are left, release the lease.
func TestSweepUnderLease(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		sw, st := m.newSweeper(sweeper.Options{LeaseTTL: time.Minute})
		owner := []byte(sw.Owner())
		m.mock.ExpectExec(st.Lease.Acquire).WithArgs(owner, m.enc(epoch.Add(time.Minute)), sweeper.LeaseKey, m.enc(epoch), owner).
			WillReturnResult(sqlmock.NewResult(0, 1))
		want := []string{"exec " + st.Lease.Acquire}
		// The first batch is full; it ends at the expiry of its last row:
		// the largest expiry returned, or the one the bound query found.
		last := epoch.Add(-time.Minute)
		want = append(want, m.expectSetup(st)...)
		want = append(want, m.expectDeleteBatch(st, zeroTime, epoch, last, 2)...)
		want = append(want, m.expectDeleteBatch(st, last, epoch, zeroTime, 1)...)
		want = append(want, m.expectReset(st)...)
		m.mock.ExpectExec(st.Lease.Renew).WithArgs(m.enc(epoch), sweeper.LeaseKey, owner).WillReturnResult(sqlmock.NewResult(0, 1))
		want = append(want, "exec "+st.Lease.Renew)

		rep, err := sw.SweepOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Deleted != 3 || rep.Batches != 2 || rep.Errors != 0 || rep.Skipped {
			t.Fatalf("report %+v", rep)
		}
		sameTrips(t, "sweep", m.trips(), want...)
	})
}

// TestSweepLeaseHeldElsewhere finds the lease held by another instance:
// the run reads the holder and sweeps nothing.
func TestSweepLeaseHeldElsewhere(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		sw, st := m.newSweeper(sweeper.Options{LeaseTTL: time.Minute})
		owner := []byte(sw.Owner())
		m.mock.ExpectExec(st.Lease.Acquire).WithArgs(owner, m.enc(epoch.Add(time.Minute)), sweeper.LeaseKey, m.enc(epoch), owner).
			WillReturnResult(sqlmock.NewResult(0, 0))
		m.mock.ExpectQuery(st.Lease.Read).WithArgs(sweeper.LeaseKey).
			WillReturnRows(sqlmock.NewRows([]string{"session_data", "expiry"}).AddRow([]byte("other"), m.enc(epoch.Add(30*time.Second))))
		rep, err := sw.SweepOnce(context.Background())
		if err != nil || !rep.Skipped || rep.Holder != "other" || !rep.HeldUntil.Equal(epoch.Add(30*time.Second)) {
			t.Fatalf("report %+v, error %v", rep, err)
		}
		sameTrips(t, "skipped sweep", m.trips(), "exec "+st.Lease.Acquire, "query "+st.Lease.Read)
	})
}

// TestSweepBatchFails fails a batch in each way it can fail on MySQL,
// whose batches are transactions: each failed attempt rolls back and sends
// nothing more; retryable failures (a deadlock, a Galera certification
// failure, also at COMMIT) run the batch again.
func TestSweepBatchFails(t *testing.T) {
	type step func(m *mocked, st dialect.SweepStatements) []string
	begin := func(m *mocked, st dialect.SweepStatements) []string {
		m.mock.ExpectBegin()
		return []string{"begin"}
	}
	bound := func(m *mocked, st dialect.SweepStatements) []string {
		m.mock.ExpectQuery(st.DeleteBound).WithArgs(m.enc(zeroTime), m.enc(epoch), sweeper.LeaseKey).WillReturnRows(sqlmock.NewRows([]string{"expiry"}))
		return []string{"query " + st.DeleteBound}
	}
	del := func(n int64, err error) step {
		return func(m *mocked, st dialect.SweepStatements) []string {
			e := m.mock.ExpectExec(st.Delete).WithArgs(m.enc(zeroTime), m.enc(epoch), sweeper.LeaseKey)
			if err != nil {
				e.WillReturnError(err)
			} else {
				e.WillReturnResult(sqlmock.NewResult(0, n))
			}
			return []string{"exec " + st.Delete}
		}
	}
	commit := func(err error) step {
		return func(m *mocked, st dialect.SweepStatements) []string {
			m.mock.ExpectCommit().WillReturnError(err)
			return []string{"commit"}
		}
	}
	rollback := func(m *mocked, st dialect.SweepStatements) []string {
		m.mock.ExpectRollback()
		return []string{"rollback"}
	}
	cases := []struct {
		name    string
		steps   []step
		deleted int64
		errors  int
		failed  error
	}{
		{"delete fails", []step{begin, bound, del(0, mysqlNoTable), rollback}, 0, 1, mysqlNoTable},
		{"bound scan fails", []step{begin, func(m *mocked, st dialect.SweepStatements) []string {
			m.mock.ExpectQuery(st.DeleteBound).WithArgs(m.enc(zeroTime), m.enc(epoch), sweeper.LeaseKey).
				WillReturnRows(sqlmock.NewRows([]string{"expiry"}).AddRow(m.enc(epoch)).RowError(0, mysqlNoTable))
			return []string{"query " + st.DeleteBound}
		}, rollback}, 0, 1, mysqlNoTable},
		{"deadlock, then success", []step{begin, bound, del(0, mysqlDeadlock), rollback, begin, bound, del(1, nil), commit(nil)}, 1, 1, nil},
		{"certification failure at commit, then success", []step{begin, bound, del(1, nil), commit(mysqlDeadlock), begin, bound, del(1, nil), commit(nil)}, 1, 1, nil},
		{"commit fails", []step{begin, bound, del(1, nil), commit(mysqlNoTable)}, 0, 1, mysqlNoTable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newMock(t, "mysql")
			sw, st := m.newSweeper(sweeper.Options{})
			var want []string
			for _, s := range tc.steps {
				want = append(want, s(m, st)...)
			}
			rep, err := sw.SweepOnce(context.Background())
			if tc.failed == nil && err != nil || tc.failed != nil && !errors.Is(err, tc.failed) {
				t.Fatalf("SweepOnce: %v, want %v", err, tc.failed)
			}
			if rep.Deleted != tc.deleted || rep.Errors != tc.errors {
				t.Fatalf("report %+v", rep)
			}
			sameTrips(t, "sweep", m.trips(), want...)
		})
	}
}

// TestSweepReturningBatchFails fails the one-query batch of PostgreSQL (a
// summary row, on a connection set up for the sweep) and SQLite (a row
// per changed row) while its rows are read: nothing is counted, and
// PostgreSQL's connection is reset before it goes back to the pool.
func TestSweepReturningBatchFails(t *testing.T) {
	for _, name := range []string{"postgres", "sqlite"} {
		t.Run(name, func(t *testing.T) {
			m := newMock(t, name)
			sw, st := m.newSweeper(sweeper.Options{})
			want := m.expectSetup(st)
			rows := m.expiries(2).RowError(1, m.permanent())
			if st.Summary {
				rows = m.summary(2, epoch).RowError(0, m.permanent())
			}
			m.mock.ExpectQuery(st.Delete).WithArgs(m.enc(zeroTime), m.enc(epoch), sweeper.LeaseKey).WillReturnRows(rows)
			want = append(want, "query "+st.Delete)
			want = append(want, m.expectReset(st)...)
			rep, err := sw.SweepOnce(context.Background())
			if !errors.Is(err, m.permanent()) || rep.Deleted != 0 {
				t.Fatalf("SweepOnce: %v, report %+v", err, rep)
			}
			sameTrips(t, "sweep", m.trips(), want...)
		})
	}
}

// TestSweepContextEndsDuringBatch cancels the run's context while a MySQL
// batch runs, between its bound query and its DELETE: the batch commits
// (its count is in the report), the run stops before the next batch, and
// the lease is released.
func TestSweepContextEndsDuringBatch(t *testing.T) {
	m := newMock(t, "mysql")
	sw, st := m.newSweeper(sweeper.Options{LeaseTTL: time.Minute})
	owner := []byte(sw.Owner())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.mock.ExpectExec(st.Lease.Acquire).WithArgs(owner, m.enc(epoch.Add(time.Minute)), sweeper.LeaseKey, m.enc(epoch), owner).
		WillReturnResult(sqlmock.NewResult(0, 1))
	m.mock.ExpectBegin()
	m.mock.ExpectQuery(st.DeleteBound).WithArgs(m.enc(zeroTime), m.enc(epoch), sweeper.LeaseKey).
		WillReturnRows(sqlmock.NewRows([]string{"expiry"}).AddRow(m.enc(epoch.Add(-time.Minute))))
	m.mock.ExpectExec(st.Delete).WithArgs(m.enc(zeroTime), m.enc(epoch.Add(-time.Minute)), sweeper.LeaseKey).
		WillReturnResult(sqlmock.NewResult(0, 2))
	m.mock.ExpectCommit()
	m.mock.ExpectExec(st.Lease.Renew).WithArgs(m.enc(epoch), sweeper.LeaseKey, owner).WillReturnResult(sqlmock.NewResult(0, 1))
	m.rec.hooks(nil, func(call string) {
		if call == "query "+st.DeleteBound {
			cancel()
		}
	})
	rep, err := sw.SweepOnce(ctx)
	if !errors.Is(err, context.Canceled) || rep.Deleted != 2 || rep.Batches != 1 {
		t.Fatalf("SweepOnce: %v, report %+v", err, rep)
	}
	sameTrips(t, "interrupted sweep", m.trips(), "exec "+st.Lease.Acquire, "begin", "query "+st.DeleteBound,
		"exec "+st.Delete, "commit", "exec "+st.Lease.Renew)
}

// TestSweepRetriesAreBounded fails every attempt of a batch with a
// retryable error: 1+MaxRetries attempts, each rolled back, then the
// error.
func TestSweepRetriesAreBounded(t *testing.T) {
	m := newMock(t, "mysql")
	sw, st := m.newSweeper(sweeper.Options{MaxRetries: 2})
	var want []string
	for range 3 {
		m.mock.ExpectBegin()
		m.mock.ExpectQuery(st.DeleteBound).WithArgs(m.enc(zeroTime), m.enc(epoch), sweeper.LeaseKey).WillReturnError(mysqlLockWait)
		m.mock.ExpectRollback()
		want = append(want, "begin", "query "+st.DeleteBound, "rollback")
	}
	start := time.Now()
	rep, err := sw.SweepOnce(context.Background())
	if !errors.Is(err, mysqlLockWait) || rep.Errors != 3 {
		t.Fatalf("SweepOnce: %v, report %+v", err, rep)
	}
	// Two backoffs of at least 50ms and 100ms.
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("three attempts in %v: no backoff", d)
	}
	sameTrips(t, "sweep", m.trips(), want...)
	if !strings.Contains(err.Error(), "delete batch") {
		t.Fatalf("error %q does not name the batch", err)
	}
}

// TestSweepResetFailsClosesConnection fails the statement that resets
// the PostgreSQL sweep's connection: the sweep still succeeds, and the
// connection is closed rather than given back to the pool with the
// sweep's planner settings. The next sweep sets up a new one.
func TestSweepResetFailsClosesConnection(t *testing.T) {
	m := newMock(t, "postgres")
	sw, st := m.newSweeper(sweeper.Options{})
	want := m.expectSetup(st)
	want = append(want, m.expectDeleteBatch(st, zeroTime, epoch, epoch, 1)...)
	m.mock.ExpectExec(st.Reset).WithoutArgs().WillReturnError(m.permanent())
	want = append(want, "exec "+st.Reset, "close")
	if rep, err := sw.SweepOnce(context.Background()); err != nil || rep.Deleted != 1 {
		t.Fatalf("SweepOnce: %v, report %+v", err, rep)
	}
	if s := m.db.Stats(); s.OpenConnections != 0 {
		t.Fatalf("%d connections open after a failed reset, want the sweep's closed", s.OpenConnections)
	}
	want = append(want, m.expectSetup(st)...)
	want = append(want, m.expectDeleteBatch(st, zeroTime, epoch, epoch, 1)...)
	want = append(want, m.expectReset(st)...)
	if rep, err := sw.SweepOnce(context.Background()); err != nil || rep.Deleted != 1 {
		t.Fatalf("second SweepOnce: %v, report %+v", err, rep)
	}
	if s := m.db.Stats(); s.OpenConnections != 1 || s.Idle != 1 {
		t.Fatalf("pool %+v after a clean reset, want its connection idle", s)
	}
	sameTrips(t, "sweeps", m.trips(), want...)
}
