package session_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/visitsession/visitsession/internal/testdb"
)

// stmtCounter counts what a counting driver's connections run, by kind.
// Executions and queries are the statements that reach the database;
// prepares are counted apart, since MySQL and SQLite prepare each
// statement once per pooled connection.
type stmtCounter struct {
	execs, queries, prepares, begins atomic.Int64
}

// statements returns executions plus queries.
func (c *stmtCounter) statements() int64 { return c.execs.Load() + c.queries.Load() }

// openCounting opens a pool on tg's database whose connections count their
// statements, wrapping the target's real driver.
func openCounting(t testing.TB, tg *testdb.Target) (*sql.DB, *stmtCounter) {
	t.Helper()
	probe, err := sql.Open(tg.Driver, tg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	drv := probe.Driver()
	probe.Close()
	var base driver.Connector
	if dc, ok := drv.(driver.DriverContext); ok {
		if base, err = dc.OpenConnector(tg.DSN); err != nil {
			t.Fatal(err)
		}
	} else {
		base = dsnConnector{drv: drv, dsn: tg.DSN}
	}
	c := &stmtCounter{}
	db := sql.OpenDB(&countingConnector{base: base, n: c})
	t.Cleanup(func() { db.Close() })
	return db, c
}

type dsnConnector struct {
	drv driver.Driver
	dsn string
}

func (d dsnConnector) Connect(context.Context) (driver.Conn, error) { return d.drv.Open(d.dsn) }
func (d dsnConnector) Driver() driver.Driver                        { return d.drv }

type countingConnector struct {
	base driver.Connector
	n    *stmtCounter
}

func (c *countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, n: c.n}, nil
}

func (c *countingConnector) Driver() driver.Driver { return c.base.Driver() }

// countingConn forwards to the real connection, counting as it goes. Where
// the real connection lacks an optional interface it answers ErrSkip, so
// database/sql takes the same path as without the wrapper.
type countingConn struct {
	driver.Conn
	n *stmtCounter
}

var (
	_ driver.ConnPrepareContext = (*countingConn)(nil)
	_ driver.ConnBeginTx        = (*countingConn)(nil)
	_ driver.ExecerContext      = (*countingConn)(nil)
	_ driver.QueryerContext     = (*countingConn)(nil)
	_ driver.Pinger             = (*countingConn)(nil)
	_ driver.SessionResetter    = (*countingConn)(nil)
	_ driver.Validator          = (*countingConn)(nil)
	_ driver.NamedValueChecker  = (*countingConn)(nil)
)

func (c *countingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var st driver.Stmt
	var err error
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.Conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	c.n.prepares.Add(1)
	return &countingStmt{Stmt: st, n: c.n}, nil
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.n.begins.Add(1)
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	return c.Conn.Begin()
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := e.ExecContext(ctx, query, args)
	if !errors.Is(err, driver.ErrSkip) {
		c.n.execs.Add(1)
	}
	return res, err
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if !errors.Is(err, driver.ErrSkip) {
		c.n.queries.Add(1)
	}
	return rows, err
}

func (c *countingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *countingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *countingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

type countingStmt struct {
	driver.Stmt
	n *stmtCounter
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.n.execs.Add(1)
	if e, ok := s.Stmt.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	return s.Stmt.Exec(values(args))
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.n.queries.Add(1)
	if q, ok := s.Stmt.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	return s.Stmt.Query(values(args))
}

func values(args []driver.NamedValue) []driver.Value {
	out := make([]driver.Value, len(args))
	for i, a := range args {
		out[i] = a.Value
	}
	return out
}

// TestCountingDriverCounts checks the counting driver itself on every
// database: one statement run through the pool, prepared or not, counts
// once.
func TestCountingDriverCounts(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		db, n := openCounting(t, tg)
		ctx := context.Background()
		var one int
		if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("select: %v %d", err, one)
		}
		if got := n.statements(); got != 1 {
			t.Fatalf("statements after one query = %d, want 1", got)
		}
		st, err := db.PrepareContext(ctx, "SELECT 2")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		for range 3 {
			if err := st.QueryRowContext(ctx).Scan(&one); err != nil || one != 2 {
				t.Fatalf("prepared select: %v %d", err, one)
			}
		}
		if got := n.statements(); got != 4 {
			t.Fatalf("statements after three prepared queries = %d, want 4", got)
		}
		if n.prepares.Load() < 1 {
			t.Fatal("prepare not counted")
		}
	})
}
