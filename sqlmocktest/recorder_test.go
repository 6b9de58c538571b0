package sqlmocktest

import (
	"context"
	"database/sql/driver"
	"strings"
	"sync"
)

// recorder sits between database/sql and the mock's connection. It logs
// every call that reaches the database, and every answer in which the mock
// refused a call it did not expect: the code under test may swallow such
// an error (a failed ROLLBACK, say), which would hide a statement sent
// after a rollback or one too many.
type recorder struct {
	mu         sync.Mutex
	calls      []string
	unexpected []string
	// before and after, when set, are called with each call before it
	// reaches the mock, and once the mock answered it (before the answer
	// goes back to the caller).
	before, after func(call string)
}

// starting calls the before hook.
func (r *recorder) starting(call string) {
	r.mu.Lock()
	before := r.before
	r.mu.Unlock()
	if before != nil {
		before(call)
	}
}

// hooks sets the before and after hooks.
func (r *recorder) hooks(before, after func(call string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.before, r.after = before, after
}

// record logs a call and the mock's answer.
func (r *recorder) record(call string, err error) {
	r.mu.Lock()
	r.calls = append(r.calls, call)
	if err != nil && refused(err) {
		r.unexpected = append(r.unexpected, call+": "+err.Error())
	}
	after := r.after
	r.mu.Unlock()
	if after != nil {
		after(call)
	}
}

// log returns the calls logged so far and clears the log.
func (r *recorder) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

// refusals returns the calls the mock refused.
func (r *recorder) refusals() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.unexpected...)
}

// refused reports whether err is the mock refusing a call, as opposed to
// an error a test told it to return.
func refused(err error) bool {
	msg := err.Error()
	for _, s := range []string{"was not expected", "do not match", "could not match", "all expectations were already fulfilled",
		"ExecQuery: ", "Query: ", "Prepare: "} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// connector opens recording connections to the mock named dsn.
type connector struct {
	drv driver.Driver
	dsn string
	rec *recorder
}

func (c *connector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &recConn{conn: conn, rec: c.rec}, nil
}

func (c *connector) Driver() driver.Driver { return c.drv }

// recConn is a recording connection. The mock's connection implements
// every interface used here.
type recConn struct {
	conn driver.Conn
	rec  *recorder
}

var (
	_ driver.ConnBeginTx        = (*recConn)(nil)
	_ driver.ConnPrepareContext = (*recConn)(nil)
	_ driver.ExecerContext      = (*recConn)(nil)
	_ driver.QueryerContext     = (*recConn)(nil)
	_ driver.NamedValueChecker  = (*recConn)(nil)
	_ driver.Pinger             = (*recConn)(nil)
)

func (c *recConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *recConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	c.rec.record("prepare "+query, err)
	if err != nil {
		return nil, err
	}
	return &recStmt{Stmt: st, query: query, rec: c.rec}, nil
}

func (c *recConn) Close() error {
	err := c.conn.Close()
	c.rec.record("close", nil)
	return err
}

func (c *recConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *recConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	c.rec.record("begin", err)
	if err != nil {
		return nil, err
	}
	return &recTx{tx: tx, rec: c.rec}, nil
}

func (c *recConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.rec.starting("exec " + query)
	res, err := c.conn.(driver.ExecerContext).ExecContext(ctx, query, args)
	c.rec.record("exec "+query, err)
	return res, err
}

func (c *recConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.rec.starting("query " + query)
	rows, err := c.conn.(driver.QueryerContext).QueryContext(ctx, query, args)
	c.rec.record("query "+query, err)
	return rows, err
}

func (c *recConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

func (c *recConn) Ping(ctx context.Context) error { return c.conn.(driver.Pinger).Ping(ctx) }

// recTx records commits and rollbacks.
type recTx struct {
	tx  driver.Tx
	rec *recorder
}

func (t *recTx) Commit() error {
	err := t.tx.Commit()
	t.rec.record("commit", err)
	return err
}

func (t *recTx) Rollback() error {
	err := t.tx.Rollback()
	t.rec.record("rollback", err)
	return err
}

// recStmt records the executions of a prepared statement. The mock's
// statements implement only driver.Stmt's Exec and Query.
type recStmt struct {
	driver.Stmt
	query string
	rec   *recorder
}

func (s *recStmt) Exec(args []driver.Value) (driver.Result, error) {
	s.rec.starting("exec " + s.query)
	res, err := s.Stmt.Exec(args)
	s.rec.record("exec "+s.query, err)
	return res, err
}

func (s *recStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.rec.starting("query " + s.query)
	rows, err := s.Stmt.Query(args)
	s.rec.record("query "+s.query, err)
	return rows, err
}
