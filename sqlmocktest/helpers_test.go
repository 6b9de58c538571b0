package sqlmocktest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	_ "modernc.org/sqlite" // registers "sqlite", for a real SQLite error value

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// epoch is the clock of every store under test.
var epoch = time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)

// idle is the idle timeout of every store under test.
const idle = 2 * time.Hour

// mocked is one mocked database, posing as the database of dialect d.
type mocked struct {
	t    *testing.T
	name string
	d    dialect.Dialect
	db   *sql.DB
	mock sqlmock.Sqlmock
	rec  *recorder
	busy error // a real SQLITE_BUSY, made on first use
	tab  visit.Table
	sql  dialect.Statements
	// prepared lists, in order, the prepare expectations of the store's
	// statements, so that a test can require them to be closed.
	prepared []*sqlmock.ExpectedPrepare
	// grace tells expectOpen that the store has a renewal grace window,
	// which prepares the Forward statement too.
	grace bool
}

// newMock returns a fresh mock posing as dialect name. At the end of the
// test it checks that every expectation was met, in order, and that no
// connection is left in use.
func newMock(t *testing.T, name string) *mocked { return buildMock(t, name, true) }

// newLooseMock is newMock for tests that give the mock more expectations
// than the code may use: it does not require every expectation to be met.
func newLooseMock(t *testing.T, name string) *mocked { return buildMock(t, name, false) }

func buildMock(t *testing.T, name string, strict bool) *mocked {
	t.Helper()
	dsn := "mock_" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "_" + visit.NewToken()[:8]
	raw, mock, err := sqlmock.NewWithDSN(dsn, sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	db := sql.OpenDB(&connector{drv: raw.Driver(), dsn: dsn, rec: rec})
	d := mockDialects()[name]
	st, err := d.Statements(visit.Default())
	if err != nil {
		t.Fatal(err)
	}
	m := &mocked{t: t, name: name, d: d, db: db, mock: mock, rec: rec, tab: visit.Default(), sql: st}
	t.Cleanup(func() {
		if err := mock.ExpectationsWereMet(); strict && err != nil {
			t.Error(err)
		}
		if r := rec.refusals(); strict && len(r) > 0 {
			t.Errorf("calls the mock did not expect:\n%s", strings.Join(r, "\n"))
		}
		if n := db.Stats().InUse; n != 0 {
			t.Errorf("%d connections still in use", n)
		}
		db.Close()
		raw.Close()
	})
	return m
}

// mockDialects returns the shipped dialects by name, and "sqlite-conn":
// SQLite as a dialect whose locked mode opens its transaction with a
// statement on a dedicated connection (Lock.Begin), the path the engine
// keeps for dialects that need it.
func mockDialects() map[string]dialect.Dialect {
	ds := dialects()
	ds["sqlite-conn"] = connLock{dialect.SQLite()}
	return ds
}

// connLock is a dialect whose locked mode takes its lock with BEGIN
// IMMEDIATE on a dedicated connection.
type connLock struct{ dialect.Dialect }

func (connLock) Lock() dialect.Lock {
	return dialect.Lock{Begin: "BEGIN IMMEDIATE", Commit: "COMMIT", Rollback: "ROLLBACK"}
}

func (c connLock) Statements(t visit.Table) (dialect.Statements, error) {
	st, err := c.Dialect.Statements(t)
	st.TakeLock = "" // BEGIN IMMEDIATE takes the lock
	return st, err
}

// eachDialect runs f as a subtest per dialect, each with a fresh mock.
func eachDialect(t *testing.T, f func(t *testing.T, m *mocked)) {
	for _, name := range []string{"postgres", "mysql", "sqlite", "sqlite-conn"} {
		t.Run(name, func(t *testing.T) { f(t, newMock(t, name)) })
	}
}

// txDialects runs f for the dialects whose locked mode uses a database/sql
// transaction.
func txDialects(t *testing.T, f func(t *testing.T, m *mocked)) {
	for _, name := range []string{"postgres", "mysql", "sqlite"} {
		t.Run(name, func(t *testing.T) { f(t, newMock(t, name)) })
	}
}

// enc is the driver argument the dialect binds for instant at.
func (m *mocked) enc(at time.Time) driver.Value { return m.d.EncodeTime(at) }

// expectCatalog expects the two catalog queries of session.Open on a
// complete table.
func (m *mocked) expectCatalog() {
	q, args := m.d.ColumnsQuery(m.tab)
	cols := sqlmock.NewRows([]string{"column_name"})
	for _, c := range visit.Columns {
		cols.AddRow(m.tab.ColumnName(c))
	}
	m.mock.ExpectQuery(q).WithArgs(values(args)...).WillReturnRows(cols)
	q, args = m.d.ExpiryIndexQuery(m.tab)
	m.mock.ExpectQuery(q).WithArgs(values(args)...).WillReturnRows(sqlmock.NewRows([]string{"count"}).AddRow(1))
}

// expectDetachQuery expects the dialect's query by which session.Open learns
// whether reads may run detached (dialect.Dialect.DetachReads), answered
// with the value that lets them: on the SQLite dialects, WAL mode.
func (m *mocked) expectDetachQuery() {
	if q, detached := m.d.DetachReads(); q != "" {
		m.mock.ExpectQuery(q).WillReturnRows(sqlmock.NewRows([]string{"answer"}).AddRow(detached))
	}
}

// statementOrder lists the store's statements in the order Open prepares
// them.
func (m *mocked) statementOrder() []string {
	s := m.sql
	order := []string{s.Load, s.LoadLocked, s.TakeLock, s.Insert, s.Update, s.UpdateAny, s.Renew, s.Touch, s.End, s.Delete}
	return slices.DeleteFunc(order, func(q string) bool { return q == "" })
}

// expectOpen expects everything session.Open sends: the catalog queries,
// SQLite's journal mode and, where the dialect prepares, one prepare per
// statement.
func (m *mocked) expectOpen() {
	m.expectCatalog()
	m.expectDetachQuery()
	m.prepared = nil
	if m.d.Prepare() {
		order := m.statementOrder()
		if m.grace {
			order = append(order, m.sql.Forward)
		}
		for _, q := range order {
			m.prepared = append(m.prepared, m.mock.ExpectPrepare(q).WillBeClosed())
		}
	}
}

// open expects and runs session.Open with the fixed clock and opts, and
// closes the store at the end of the test.
func (m *mocked) open(opts ...session.Option) *session.Store {
	m.t.Helper()
	m.expectOpen()
	st, err := session.Open(context.Background(), m.db, m.d,
		append([]session.Option{session.WithClock(func() time.Time { return epoch }), session.WithIdleTimeout(idle)}, opts...)...)
	if err != nil {
		m.t.Fatalf("Open: %v", err)
	}
	m.t.Cleanup(func() { st.Close() })
	return st
}

// stored is a row as the load statements return it.
type stored struct {
	values  map[string]any
	created time.Time
	expiry  time.Time
	version int64
}

// live returns a row created an hour before epoch, expiring an hour after
// it, at the given version.
func live(version int64, values map[string]any) stored {
	return stored{values: values, created: epoch.Add(-time.Hour), expiry: epoch.Add(time.Hour), version: version}
}

// rows returns the load statement's answer holding r.
func (m *mocked) rows(r stored) *sqlmock.Rows {
	var data driver.Value
	if len(r.values) > 0 {
		b, err := session.GobCodec().Encode(r.values)
		if err != nil {
			m.t.Fatal(err)
		}
		data = b
	}
	return sqlmock.NewRows([]string{"session_data", "created", "expiry", "version"}).
		AddRow(data, m.enc(r.created), m.enc(r.expiry), r.version)
}

// noRows is the load statement's answer when no live row matches.
func noRows() *sqlmock.Rows {
	return sqlmock.NewRows([]string{"session_data", "created", "expiry", "version"})
}

// expectLoad expects the plain load of key at now.
func (m *mocked) expectLoad(key string, now time.Time) *sqlmock.ExpectedQuery {
	return m.mock.ExpectQuery(m.sql.Load).WithArgs(key, m.enc(now))
}

// expectLoadLocked expects the locking load of key at now.
func (m *mocked) expectLoadLocked(key string, now time.Time) *sqlmock.ExpectedQuery {
	return m.mock.ExpectQuery(m.sql.LoadLocked).WithArgs(key, m.enc(now))
}

// expectUpdate expects the conditional update of key from version to
// values, at epoch.
func (m *mocked) expectUpdate(key string, version int64, values map[string]any) *sqlmock.ExpectedExec {
	exp := m.enc(epoch.Add(idle))
	return m.mock.ExpectExec(m.sql.Update).WithArgs(holds(values), exp, exp, key, version, m.enc(epoch))
}

// expectBegin expects what opens the locked mode's transaction, and the
// statement that then takes the lock where the dialect has one.
func (m *mocked) expectBegin() {
	if lk := m.d.Lock(); lk.Begin != "" {
		m.mock.ExpectExec(lk.Begin).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		return
	}
	m.mock.ExpectBegin()
	if m.sql.TakeLock != "" {
		m.mock.ExpectExec(m.sql.TakeLock).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
	}
}

// expectCommit expects the locked mode's commit, answered with err.
func (m *mocked) expectCommit(err error) {
	if lk := m.d.Lock(); lk.Commit != "" {
		e := m.mock.ExpectExec(lk.Commit).WithoutArgs()
		if err != nil {
			e.WillReturnError(err)
		} else {
			e.WillReturnResult(sqlmock.NewResult(0, 0))
		}
		return
	}
	e := m.mock.ExpectCommit()
	if err != nil {
		e.WillReturnError(err)
	}
}

// expectRollback expects the locked mode's rollback.
func (m *mocked) expectRollback() {
	if lk := m.d.Lock(); lk.Rollback != "" {
		m.mock.ExpectExec(lk.Rollback).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		return
	}
	m.mock.ExpectRollback()
}

// newToken returns a token and its stored (hashed) key.
func newToken() (token, key string) {
	tok := visit.NewToken()
	return tok, visit.HashToken(tok)
}

// values converts catalog query arguments to driver values.
func values(args []any) []driver.Value {
	out := make([]driver.Value, len(args))
	for i, a := range args {
		out[i] = a
	}
	return out
}

// holds matches an encoded session holding exactly want (nil data for an
// empty session).
type holds map[string]any

// Match decodes v and compares it with h.
func (h holds) Match(v driver.Value) bool {
	b, ok := v.([]byte)
	if !ok || len(b) == 0 {
		return len(h) == 0 && (v == nil || ok)
	}
	got, err := session.GobCodec().Decode(b)
	return err == nil && reflect.DeepEqual(map[string]any(h), got)
}

// keyArg matches any well-formed stored key and records it.
type keyArg struct{ got *string }

// Match accepts a 40-character lowercase hex key.
func (k keyArg) Match(v driver.Value) bool {
	s, ok := v.(string)
	if !ok || len(s) != visit.KeyLength || strings.Trim(s, "0123456789abcdef") != "" {
		return false
	}
	if k.got != nil {
		*k.got = s
	}
	return true
}

// Driver errors of each database, as their drivers return them.
var (
	mysqlDeadlock = &mysql.MySQLError{Number: 1213, SQLState: [5]byte{'4', '0', '0', '0', '1'},
		Message: "WSREP detected deadlock/conflict and aborted the transaction. Try restarting the transaction"}
	mysqlLockWait  = &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded; try restarting transaction"}
	mysqlNoTable   = &mysql.MySQLError{Number: 1146, Message: "Table 'app.visit' doesn't exist"}
	pgSerialize    = &pgconn.PgError{Code: "40001", Message: "could not serialize access due to concurrent update"}
	pgDeadlock     = &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
	pgNoTable      = &pgconn.PgError{Code: "42P01", Message: `relation "visit" does not exist`}
	pgDuplicate    = &pgconn.PgError{Code: "23505", Message: `duplicate key value violates unique constraint "visit_pkey"`}
	mysqlDuplicate = &mysql.MySQLError{Number: 1062, Message: "Duplicate entry for key 'PRIMARY'"}
	// sqliteNoTable stands for an error of modernc.org/sqlite that is not
	// retryable; the dialect classifies only *sqlite.Error values.
	sqliteNoTable = errors.New("SQL logic error: no such table: visit (1)")
)

// retryable returns a retryable error of the mocked database, the same
// value on every call.
func (m *mocked) retryable() error {
	switch m.name {
	case "postgres":
		return pgSerialize
	case "mysql":
		return mysqlDeadlock
	}
	if m.busy == nil {
		m.busy = sqliteBusy(m.t)
	}
	return m.busy
}

// permanent returns an error of the mocked database that is not retryable.
func (m *mocked) permanent() error {
	switch m.name {
	case "postgres":
		return pgNoTable
	case "mysql":
		return mysqlNoTable
	}
	return sqliteNoTable
}

// sqliteBusy returns a real SQLITE_BUSY error of modernc.org/sqlite, whose
// error type has no exported constructor: a second connection with no busy
// timeout tries to take the write lock the first holds.
func sqliteBusy(t *testing.T) error {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "busy.db") + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(0)"
	a, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	ca, err := a.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	if _, err := ca.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer ca.ExecContext(ctx, "ROLLBACK")
	_, err = b.ExecContext(ctx, "BEGIN IMMEDIATE")
	if err == nil || dialect.SQLite().Classify(err) != dialect.Retryable {
		t.Fatalf("second writer: got %v, want SQLITE_BUSY", err)
	}
	return err
}

// sqliteDuplicate returns a real primary-key violation of
// modernc.org/sqlite.
func sqliteDuplicate(t *testing.T) error {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "dup.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE v (k TEXT NOT NULL PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec("INSERT INTO v (k) VALUES ('a'), ('a')")
	if err == nil || dialect.SQLite().Classify(err) != dialect.Duplicate {
		t.Fatalf("duplicate insert: got %v, want a primary-key violation", err)
	}
	return err
}

// noSecrets fails t if the error's text holds the token or the key.
func noSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error text reveals a token or key: %v", err)
		}
	}
}

// trips returns, and forgets, the calls that reached the mock since the
// last call of trips, with the store's statements named by their field in
// dialect.Statements: "query Load", "exec Update", "begin", "commit", ...
// Each is one round trip to the database.
func (m *mocked) trips() []string {
	var out []string
	for _, c := range m.rec.log() {
		out = append(out, m.label(c))
	}
	return out
}

// label names the statement of a recorded call.
func (m *mocked) label(call string) string {
	s := m.sql
	names := map[string]string{s.Load: "Load", s.Insert: "Insert", s.Update: "Update", s.UpdateAny: "UpdateAny",
		s.Renew: "Renew", s.Touch: "Touch", s.End: "End", s.Delete: "Delete", s.Forward: "Forward"}
	if s.LoadLocked != s.Load {
		names[s.LoadLocked] = "LoadLocked"
	}
	if s.TakeLock != "" {
		names[s.TakeLock] = "TakeLock"
	}
	verb, q, _ := strings.Cut(call, " ")
	if n, ok := names[q]; ok {
		return verb + " " + n
	}
	return call
}

// waitTrip waits until trip has reached the mock, for calls that
// database/sql or the store make on their own goroutine when a context
// ends.
func (m *mocked) waitTrip(t *testing.T, trip string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.rec.mu.Lock()
		seen := false
		for _, c := range m.rec.calls {
			seen = seen || m.label(c) == trip
		}
		m.rec.mu.Unlock()
		if seen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not sent within 5s", trip)
		}
		time.Sleep(time.Millisecond)
	}
}

// sameTrips fails t unless got equals want.
func sameTrips(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("%s sent:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
