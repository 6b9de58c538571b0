package sweeper

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

func TestDefaults(t *testing.T) {
	c, err := Options{}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.batchSize != 1000 || c.pause != 10*time.Millisecond || c.interval != 5*time.Minute || c.jitter != 30*time.Second ||
		c.maxRetries != 3 || c.batchTimeout != 30*time.Second || c.leaseTTL != time.Minute || c.deleteAfter != 0 ||
		c.clearData || c.clock == nil || c.logger == nil || c.hook != nil {
		t.Errorf("defaults: %+v", c)
	}
	c, err = Options{Pause: -1, Jitter: -1, MaxRetries: -1, BatchTimeout: -1, LeaseTTL: -1, Interval: time.Second}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.pause != 0 || c.jitter != 0 || c.maxRetries != 0 || c.batchTimeout != 0 || c.leaseTTL != 0 {
		t.Errorf("negative values do not turn features off: %+v", c)
	}
	if c, _ := (Options{Interval: time.Second}).resolve(); c.jitter != 100*time.Millisecond {
		t.Errorf("jitter %v, want Interval/10", c.jitter)
	}
}

func TestBackoff(t *testing.T) {
	for attempt, want := range []time.Duration{50, 100, 200, 400, 800, 1600, 2000, 2000} {
		want *= time.Millisecond
		for range 20 {
			if d := backoff(attempt); d < want || d > want+want/2 {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempt, d, want, want+want/2)
			}
		}
	}
}

// expectBatch expects the statement of one PostgreSQL batch, Delete or
// (with clear) Clear, on the connection the sweep holds.
func expectBatch(mock sqlmock.Sqlmock, st dialect.SweepStatements, clear ...bool) *sqlmock.ExpectedQuery {
	if len(clear) > 0 && clear[0] {
		return mock.ExpectQuery(st.Clear)
	}
	return mock.ExpectQuery(st.Delete)
}

// expectSetup and expectReset expect the statements that set up the
// sweep's connection and reset it before it goes back to the pool.
func expectSetup(mock sqlmock.Sqlmock, st dialect.SweepStatements) {
	mock.ExpectExec(st.Setup).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
}

func expectReset(mock sqlmock.Sqlmock, st dialect.SweepStatements) {
	mock.ExpectExec(st.Reset).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
}

// summary is the answer of a PostgreSQL batch that changed n rows, the
// latest expiring at last.
func summary(n int, last time.Time) *sqlmock.Rows {
	rows := sqlmock.NewRows([]string{"count", "max"})
	if n == 0 {
		return rows.AddRow(int64(0), nil)
	}
	return rows.AddRow(int64(n), last)
}

// TestRetryLimit drives the statements through go-sqlmock to count
// attempts exactly: retryable errors are retried MaxRetries times, other
// errors not at all.
func TestRetryLimit(t *testing.T) {
	d := dialect.Postgres()
	tab := visit.Default()
	st, err := d.Sweep(tab, 1000)
	if err != nil {
		t.Fatal(err)
	}
	deadlock := &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
	missing := &pgconn.PgError{Code: "42P01", Message: "relation does not exist"}
	tests := []struct {
		name       string
		errs       []error // of the attempts before the last
		last       error   // of the last attempt; nil: returns 3 rows
		wantErrors int
	}{
		{"success", nil, nil, 0},
		{"retried then success", []error{deadlock, deadlock}, nil, 2},
		{"retries exhausted", []error{deadlock, deadlock}, deadlock, 3},
		{"permanent error", nil, missing, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			// A failed batch gives its connection back, reset; the next
			// attempt sets one up again.
			for _, e := range tt.errs {
				expectSetup(mock, st)
				expectBatch(mock, st).WillReturnError(e)
				expectReset(mock, st)
			}
			expectSetup(mock, st)
			if tt.last != nil {
				expectBatch(mock, st).WillReturnError(tt.last)
			} else {
				expectBatch(mock, st).WillReturnRows(summary(3, time.Unix(3, 0)))
			}
			expectReset(mock, st)
			sw, err := New(db, d, tab, Options{MaxRetries: 2, LeaseTTL: -1, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := sw.SweepOnce(context.Background())
			if rep.Errors != tt.wantErrors {
				t.Errorf("Errors = %d, want %d", rep.Errors, tt.wantErrors)
			}
			if tt.last == nil && (err != nil || rep.Deleted != 3 || rep.Batches != 1) {
				t.Errorf("got %v, %v; want 3 deleted in one batch", rep, err)
			}
			var pgErr *pgconn.PgError
			if tt.last != nil && (!errors.As(err, &pgErr) || pgErr != tt.last) {
				t.Errorf("error %v, want %v wrapped", err, tt.last)
			}
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestCursorAdvances checks, through go-sqlmock, that each batch starts at
// the largest expiry the previous one returned, and that a full batch is
// followed by another.
func TestCursorAdvances(t *testing.T) {
	d := dialect.Postgres()
	tab := visit.Default()
	st, err := d.Sweep(tab, 2)
	if err != nil {
		t.Fatal(err)
	}
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cutoff := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := cutoff
	at := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	expectSetup(mock, st)
	expectBatch(mock, st, true).WithArgs(time.Time{}, cutoff, LeaseKey).WillReturnRows(summary(2, at(20)))
	expectBatch(mock, st, true).WithArgs(at(20), cutoff, LeaseKey).WillReturnRows(summary(2, at(30)))
	expectBatch(mock, st, true).WithArgs(at(30), cutoff, LeaseKey).WillReturnRows(summary(1, at(40)))
	expectReset(mock, st)
	sw, err := New(db, d, tab, Options{BatchSize: 2, Pause: -1, LeaseTTL: -1, ClearData: true, DeleteAfter: Never,
		Clock: func() time.Time { return clock }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := sw.SweepOnce(context.Background())
	if err != nil || rep.Cleared != 5 || rep.Batches != 3 {
		t.Errorf("got %v, %v; want 5 cleared in 3 batches", rep, err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
	// The next runs start an hour before the cutoff of the previous one,
	// until a day has passed since the last full pass.
	for _, c := range []struct{ at, from time.Time }{
		{cutoff.Add(3 * time.Hour), cutoff.Add(-clearRescan)},
		{cutoff.Add(5 * time.Hour), cutoff.Add(3*time.Hour - clearRescan)},
		{cutoff.Add(clearFullEvery), time.Time{}},
		{cutoff.Add(clearFullEvery + time.Minute), cutoff.Add(clearFullEvery - clearRescan)},
	} {
		clock = c.at
		expectSetup(mock, st)
		expectBatch(mock, st, true).WithArgs(c.from, c.at, LeaseKey).WillReturnRows(summary(0, time.Time{}))
		expectReset(mock, st)
		if rep, err := sw.SweepOnce(context.Background()); err != nil || rep.Batches != 1 {
			t.Errorf("run at %v: %v, %v", c.at, rep, err)
		}
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}
