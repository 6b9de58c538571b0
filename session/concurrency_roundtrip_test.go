package session_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
)

// TestRoundTrips counts, on each real driver, the calls that reach the
// database for one uncontended request in each mode: a load, a save of a
// change, and a save without changes and with no touch due. Each call
// (execute, query, begin, commit, rollback, prepare) is one round trip on
// PostgreSQL and MySQL; on SQLite it is a call into the library. The pool
// has one connection, warmed up first, so that statements prepared per
// connection (MySQL, SQLite) and pgx's statement cache are in place, as
// they are in a running application.
func TestRoundTrips(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
				ctx := context.Background()
				tab := tg.CreateTable(t)
				db, calls := tripPool(t, tg)
				st := openOn(t, db, tg, tab, session.WithMode(m.mode), session.WithTouchInterval(time.Hour))
				tok := seed(t, st, map[string]any{"n": 0})
				request := func(change bool) (load, save []string) {
					calls.take()
					s, err := st.Load(ctx, tok)
					if err != nil || s.IsNew() {
						t.Fatalf("load: new=%v %v", s.IsNew(), err)
					}
					load = calls.take()
					if change {
						s.Set("n", s.GetInt("n")+1)
					}
					if err := st.Save(ctx, s); err != nil {
						t.Fatal(err)
					}
					return load, calls.take()
				}
				request(true) // warm up
				load, save := request(true)
				_, unchanged := request(false)

				// The locked mode's transaction is a database/sql one,
				// whose lock on SQLite an UPDATE of no row takes first (in
				// process), or statements on a dedicated connection.
				begin, commit := []string{"begin"}, "commit"
				if stmts, _ := tg.Dialect.Statements(tab); stmts.TakeLock != "" {
					begin = append(begin, "exec")
				}
				if tg.Dialect.Lock().Begin != "" {
					begin, commit = []string{"exec"}, "exec"
				}
				want := map[session.Mode][3][]string{
					session.Merge:         {{"query"}, {"exec"}, nil},
					session.LastWriteWins: {{"query"}, {"exec"}, nil},
					session.Locked:        {append(begin, "query"), {"exec", commit}, {commit}},
				}[m.mode]
				for i, got := range [][]string{load, save, unchanged} {
					if strings.Join(got, ",") != strings.Join(want[i], ",") {
						t.Errorf("%s: %d round trips %v, want %v", []string{"load", "save", "unchanged save"}[i], len(got), got, want[i])
					}
				}
				t.Logf("%s/%s: load %d %v, save %d %v, unchanged save %d %v", m.name, tg.Kind,
					len(load), load, len(save), save, len(unchanged), unchanged)
				noneInUse(t, db)
			})
		})
	}
}

// tripLog records the kind of each call that reaches the database.
type tripLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *tripLog) add(kind string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, kind)
}

// take returns the calls logged since the last take.
func (l *tripLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.calls
	l.calls = nil
	return out
}

// tripPool opens a one-connection pool on tg's database whose
// connections log every call to the driver.
func tripPool(t *testing.T, tg *testdb.Target) (*sql.DB, *tripLog) {
	t.Helper()
	plain, err := sql.Open(tg.Driver, tg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	drv := plain.Driver()
	plain.Close()
	log := &tripLog{}
	var c driver.Connector
	if dc, ok := drv.(driver.DriverContext); ok {
		if c, err = dc.OpenConnector(tg.DSN); err != nil {
			t.Fatal(err)
		}
	} else {
		c = tripDSNConnector{drv: drv, dsn: tg.DSN}
	}
	db := sql.OpenDB(tripConnector{Connector: c, log: log})
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	t.Cleanup(func() { db.Close() })
	return db, log
}

// tripDSNConnector is a connector for drivers without driver.DriverContext.
type tripDSNConnector struct {
	drv driver.Driver
	dsn string
}

func (c tripDSNConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c tripDSNConnector) Driver() driver.Driver                        { return c.drv }

// tripConnector wraps each connection of Connector in a tripConn.
type tripConnector struct {
	driver.Connector
	log *tripLog
}

func (c tripConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &tripConn{conn: conn, log: c.log}, nil
}

// tripConn logs the calls of a driver connection and passes them on.
// An optional interface the driver lacks is reported with driver.ErrSkip,
// so that database/sql takes its fallback path (logged as well).
type tripConn struct {
	conn driver.Conn
	log  *tripLog
}

var (
	_ driver.ConnBeginTx        = (*tripConn)(nil)
	_ driver.ConnPrepareContext = (*tripConn)(nil)
	_ driver.ExecerContext      = (*tripConn)(nil)
	_ driver.QueryerContext     = (*tripConn)(nil)
	_ driver.NamedValueChecker  = (*tripConn)(nil)
	_ driver.SessionResetter    = (*tripConn)(nil)
	_ driver.Validator          = (*tripConn)(nil)
)

func (c *tripConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *tripConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.log.add("prepare")
	var st driver.Stmt
	var err error
	if p, ok := c.conn.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &tripStmt{Stmt: st, conn: c, log: c.log}, nil
}

func (c *tripConn) Close() error { return c.conn.Close() }

func (c *tripConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *tripConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.log.add("begin")
	var tx driver.Tx
	var err error
	if b, ok := c.conn.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = c.conn.Begin()
	}
	if err != nil {
		return nil, err
	}
	return tripTx{tx: tx, log: c.log}, nil
}

func (c *tripConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	c.log.add("exec")
	return e.ExecContext(ctx, query, args)
}

func (c *tripConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	c.log.add("query")
	return q.QueryContext(ctx, query, args)
}

func (c *tripConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *tripConn) ResetSession(ctx context.Context) error {
	if r, ok := c.conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *tripConn) IsValid() bool {
	if v, ok := c.conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// tripTx logs commits and rollbacks.
type tripTx struct {
	tx  driver.Tx
	log *tripLog
}

func (t tripTx) Commit() error   { t.log.add("commit"); return t.tx.Commit() }
func (t tripTx) Rollback() error { t.log.add("rollback"); return t.tx.Rollback() }

// tripStmt logs the executions of a prepared statement.
type tripStmt struct {
	driver.Stmt
	conn *tripConn
	log  *tripLog
}

var (
	_ driver.StmtExecContext   = (*tripStmt)(nil)
	_ driver.StmtQueryContext  = (*tripStmt)(nil)
	_ driver.NamedValueChecker = (*tripStmt)(nil)
)

func (s *tripStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.log.add("exec")
	if e, ok := s.Stmt.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	return s.Stmt.Exec(tripValues(args))
}

func (s *tripStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.log.add("query")
	if q, ok := s.Stmt.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	return s.Stmt.Query(tripValues(args))
}

// CheckNamedValue uses the statement's checker, or else the connection's,
// as database/sql would without the wrapper.
func (s *tripStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return s.conn.CheckNamedValue(nv)
}

func tripValues(args []driver.NamedValue) []driver.Value {
	out := make([]driver.Value, len(args))
	for i, a := range args {
		out[i] = a.Value
	}
	return out
}
