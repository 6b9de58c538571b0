package sweeper_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	sq "github.com/Masterminds/squirrel"
	"go.uber.org/goleak"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/sweeper"
	"github.com/visitsession/visitsession/visit"
)

// testdb.Main ends the process right after dropping its databases, so a
// leak check cannot follow it in TestMain; each test that touches a
// database checks for leaks itself, at the end of its cleanups (see
// checkLeaks).
func TestMain(m *testing.M) { testdb.Main(m) }

// checkLeaks fails t if goroutines started during t outlive it. It must be
// called first in a test, so that its cleanup runs after the test's pools
// are closed. Goroutines of the pools that testdb shares between tests
// live until the process ends, so their connection opener and the MySQL
// driver's per-connection watcher are ignored; any other goroutine,
// including one left by Sweeper.Run, fails the test.
func checkLeaks(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		goleak.IgnoreAnyFunction("github.com/go-sql-driver/mysql.(*mysqlConn).startWatcher.func1"),
	}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// now is a fixed instant for tests that pass a Clock, truncated as the
// library stores instants.
var now = time.Now().UTC().Truncate(time.Microsecond)

func fixedClock() time.Time { return now }

// key returns a stored key in the form of a hashed token.
func key(name string) string { return visit.HashToken(name) }

// env is one table on one database.
type env struct {
	tg  *testdb.Target
	tab visit.Table
	db  *sql.DB
}

// newEnv checks t for leaks and creates a fresh table.
func newEnv(t *testing.T, tg *testdb.Target) *env {
	t.Helper()
	checkLeaks(t)
	return &env{tg: tg, tab: tg.CreateTable(t), db: tg.DB}
}

func (e *env) enc(tm time.Time) any {
	return e.tg.Dialect.EncodeTime(tm.UTC().Truncate(time.Microsecond))
}

// insert stores one row; nil data stores NULL.
func (e *env) insert(t testing.TB, k string, data []byte, expiry time.Time) {
	t.Helper()
	st, err := e.tg.Dialect.Statements(e.tab)
	if err != nil {
		t.Fatal(err)
	}
	var d any
	if data != nil {
		d = data
	}
	if _, err := e.db.ExecContext(context.Background(), st.Insert, k, d, e.enc(expiry.Add(-time.Hour)), e.enc(expiry)); err != nil {
		t.Fatalf("insert: %v", err)
	}
}

// row is one stored row as read back.
type row struct {
	found   bool
	data    []byte
	expiry  time.Time
	version int64
}

func (e *env) get(t testing.TB, k string) row {
	t.Helper()
	n := func(s string) string { return e.tg.Dialect.Quote(s) }
	q, _, err := sq.Select(n(e.tab.Data), n(e.tab.Expiry), n(e.tab.Version)).From(n(e.tab.Name)).
		Where(n(e.tab.Key)+" = ?", nil).PlaceholderFormat(e.tg.Dialect.Placeholder()).ToSql()
	if err != nil {
		t.Fatal(err)
	}
	var r row
	var raw any
	err = e.db.QueryRowContext(context.Background(), q, k).Scan(&r.data, &raw, &r.version)
	if errors.Is(err, sql.ErrNoRows) {
		return r
	}
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	r.found = true
	if r.expiry, err = e.tg.Dialect.DecodeTime(raw); err != nil {
		t.Fatal(err)
	}
	return r
}

// count returns the number of rows other than the lease row matching the
// condition cond, whose placeholders are ? (rewritten for the dialect).
func (e *env) count(t testing.TB, cond string, args ...any) int {
	t.Helper()
	n := func(s string) string { return e.tg.Dialect.Quote(s) }
	b := sq.Select("count(*)").From(n(e.tab.Name)).Where(n(e.tab.Key)+" <> ?", sweeper.LeaseKey).
		PlaceholderFormat(e.tg.Dialect.Placeholder())
	if cond != "" {
		r := strings.NewReplacer("{data}", n(e.tab.Data), "{expiry}", n(e.tab.Expiry), "{key}", n(e.tab.Key))
		b = b.Where(r.Replace(cond), args...)
	}
	q, qargs, err := b.ToSql()
	if err != nil {
		t.Fatal(err)
	}
	var c int
	if err := e.db.QueryRowContext(context.Background(), q, qargs...).Scan(&c); err != nil {
		t.Fatalf("count: %v", err)
	}
	return c
}

// bulk inserts n rows with keys key(prefix+i), data unless nilData, and
// expiry expiry(i), in multi-row INSERTs inside transactions.
func (e *env) bulk(t testing.TB, db *sql.DB, prefix string, n int, nilData bool, expiry func(i int) time.Time) {
	t.Helper()
	const perStmt = 500
	const stmtsPerTx = 20
	n2 := func(s string) string { return e.tg.Dialect.Quote(s) }
	text := func(rows int) string {
		b := sq.Insert(n2(e.tab.Name)).Columns(n2(e.tab.Key), n2(e.tab.Data), n2(e.tab.Created), n2(e.tab.Expiry), n2(e.tab.Version)).
			PlaceholderFormat(e.tg.Dialect.Placeholder())
		for range rows {
			b = b.Values(nil, nil, nil, nil, sq.Expr("1"))
		}
		s, _, err := b.ToSql()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	full := text(perStmt)
	payload := []byte(strings.Repeat("session-data;", 5))
	ctx := context.Background()
	var tx *sql.Tx
	inTx := 0
	args := make([]any, 0, 4*perStmt)
	for start := 0; start < n; start += perStmt {
		rows := min(perStmt, n-start)
		stmt := full
		if rows != perStmt {
			stmt = text(rows)
		}
		args = args[:0]
		for i := start; i < start+rows; i++ {
			var d any
			if !nilData {
				d = payload
			}
			exp := expiry(i)
			args = append(args, key(fmt.Sprint(prefix, i)), d, e.enc(exp.Add(-time.Hour)), e.enc(exp))
		}
		if tx == nil {
			var err error
			if tx, err = db.BeginTx(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
			_ = tx.Rollback()
			t.Fatalf("bulk insert: %v", err)
		}
		if inTx++; inTx == stmtsPerTx {
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			tx, inTx = nil, 0
		}
	}
	if tx != nil {
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// openDSN opens a pool closed at the end of the test.
func openDSN(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newSweeper returns a sweeper on e's table with a discarding logger
// unless opts sets one.
func (e *env) newSweeper(t testing.TB, db *sql.DB, opts sweeper.Options) *sweeper.Sweeper {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	sw, err := sweeper.New(db, e.tg.Dialect, e.tab, opts)
	if err != nil {
		t.Fatalf("sweeper.New: %v", err)
	}
	return sw
}

// hookRecorder collects the reports passed to a Hook.
type hookRecorder struct {
	mu      sync.Mutex
	reports []sweeper.Report
	notify  chan struct{}
}

func newHookRecorder() *hookRecorder { return &hookRecorder{notify: make(chan struct{}, 100)} }

func (h *hookRecorder) hook(r sweeper.Report) {
	h.mu.Lock()
	h.reports = append(h.reports, r)
	h.mu.Unlock()
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

func (h *hookRecorder) all() []sweeper.Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sweeper.Report(nil), h.reports...)
}

// logBuffer is a concurrency-safe writer for a slog handler.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var _ io.Writer = (*logBuffer)(nil)
