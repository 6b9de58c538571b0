// Package countdriver wraps a database/sql driver so that every statement
// sent through it is counted by kind (SELECT, INSERT, UPDATE, DELETE,
// other), together with the statements prepared.
//
// The wrapper forwards every optional driver interface that
// database/sql uses on the hot path (context methods, ErrSkip fallbacks,
// argument checking, session reset and validation), so a library runs
// through it exactly as through the bare driver: a driver that answers
// ExecContext or QueryContext with driver.ErrSkip (go-sql-driver/mysql
// without interpolateParams) still makes database/sql prepare, execute
// and close a statement, and the prepare is counted as such.
package countdriver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"sync/atomic"
)

// Kind is the kind of a statement, read from its first keyword.
type Kind int

// The statement kinds. REPLACE (an upsert) counts as Insert; BEGIN,
// COMMIT, ROLLBACK, SET, WITH and anything else count as Other.
const (
	Select Kind = iota
	Insert
	Update
	Delete
	Other
	numKinds
)

// String returns "SELECT", "INSERT", "UPDATE", "DELETE" or "other".
func (k Kind) String() string {
	switch k {
	case Select:
		return "SELECT"
	case Insert:
		return "INSERT"
	case Update:
		return "UPDATE"
	case Delete:
		return "DELETE"
	}
	return "other"
}

// Classify returns the kind of query from its first keyword, past
// whitespace, parentheses and comments.
func Classify(query string) Kind {
	q := query
	for {
		q = strings.TrimLeft(q, " \t\r\n(")
		switch {
		case strings.HasPrefix(q, "--"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return Other
			}
			q = q[i+1:]
			continue
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q, "*/")
			if i < 0 {
				return Other
			}
			q = q[i+2:]
			continue
		}
		break
	}
	end := strings.IndexFunc(q, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') })
	if end >= 0 {
		q = q[:end]
	}
	switch strings.ToUpper(q) {
	case "SELECT":
		return Select
	case "INSERT", "REPLACE":
		return Insert
	case "UPDATE":
		return Update
	case "DELETE":
		return Delete
	}
	return Other
}

// Counts is a snapshot of a Counter.
type Counts struct {
	// ByKind holds the statements executed, by Kind.
	ByKind [numKinds]uint64
	// Prepares counts statements prepared on a connection, explicitly or
	// by database/sql after the driver declined a direct call.
	Prepares uint64
}

// Sub returns c minus earlier.
func (c Counts) Sub(earlier Counts) Counts {
	for k := range c.ByKind {
		c.ByKind[k] -= earlier.ByKind[k]
	}
	c.Prepares -= earlier.Prepares
	return c
}

// Add returns c plus other.
func (c Counts) Add(other Counts) Counts {
	for k := range c.ByKind {
		c.ByKind[k] += other.ByKind[k]
	}
	c.Prepares += other.Prepares
	return c
}

// Get returns the count of kind k.
func (c Counts) Get(k Kind) uint64 { return c.ByKind[k] }

// Writes returns the INSERT, UPDATE and DELETE statements.
func (c Counts) Writes() uint64 { return c.ByKind[Insert] + c.ByKind[Update] + c.ByKind[Delete] }

// Total returns every statement executed.
func (c Counts) Total() uint64 {
	var n uint64
	for _, v := range c.ByKind {
		n += v
	}
	return n
}

// Counter counts statements. It is safe for concurrent use; the zero
// value is ready.
type Counter struct {
	byKind   [numKinds]atomic.Uint64
	prepares atomic.Uint64
}

// Snapshot returns the counts so far.
func (c *Counter) Snapshot() Counts {
	var s Counts
	for k := range c.byKind {
		s.ByKind[k] = c.byKind[k].Load()
	}
	s.Prepares = c.prepares.Load()
	return s
}

func (c *Counter) count(k Kind) { c.byKind[k].Add(1) }

// counted reports whether an error from a statement call means the
// statement reached the database: ErrSkip hands it to another path, and
// ErrBadConn makes database/sql retry it on another connection.
func counted(err error) bool {
	return !errors.Is(err, driver.ErrSkip) && !errors.Is(err, driver.ErrBadConn)
}

// Register registers inner under name, wrapped so that every statement is
// counted in c. Like sql.Register it panics when name is taken.
func Register(name string, inner driver.Driver, c *Counter) {
	sql.Register(name, &Driver{inner: inner, c: c})
}

// Driver is a counting wrapper around another driver.
type Driver struct {
	inner driver.Driver
	c     *Counter
}

var (
	_ driver.Driver        = (*Driver)(nil)
	_ driver.DriverContext = (*Driver)(nil)
)

// Open opens a counted connection through the inner driver.
func (d *Driver) Open(dsn string) (driver.Conn, error) {
	cn, err := d.inner.Open(dsn)
	if err != nil {
		return nil, err
	}
	return &conn{inner: cn, c: d.c}, nil
}

// OpenConnector returns a connector through the inner driver's own
// connector where it has one.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	if dc, ok := d.inner.(driver.DriverContext); ok {
		ic, err := dc.OpenConnector(dsn)
		if err != nil {
			return nil, err
		}
		return &connector{inner: ic, d: d}, nil
	}
	return &connector{dsn: dsn, d: d}, nil
}

type connector struct {
	inner driver.Connector // nil: open dsn through the driver
	dsn   string
	d     *Driver
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.inner == nil {
		return c.d.Open(c.dsn)
	}
	cn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{inner: cn, c: c.d.c}, nil
}

func (c *connector) Driver() driver.Driver { return c.d }

// Close closes the inner connector when it holds resources.
func (c *connector) Close() error {
	if cl, ok := c.inner.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

type conn struct {
	inner driver.Conn
	c     *Counter
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

func (cn *conn) Prepare(query string) (driver.Stmt, error) {
	return cn.PrepareContext(context.Background(), query)
}

func (cn *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var st driver.Stmt
	var err error
	if pc, ok := cn.inner.(driver.ConnPrepareContext); ok {
		st, err = pc.PrepareContext(ctx, query)
	} else {
		st, err = cn.inner.Prepare(query)
	}
	if counted(err) {
		cn.c.prepares.Add(1)
	}
	if err != nil {
		return nil, err
	}
	return &stmt{inner: st, conn: cn, kind: Classify(query)}, nil
}

func (cn *conn) Close() error { return cn.inner.Close() }

func (cn *conn) Begin() (driver.Tx, error) {
	return cn.BeginTx(context.Background(), driver.TxOptions{})
}

func (cn *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var tx driver.Tx
	var err error
	if bt, ok := cn.inner.(driver.ConnBeginTx); ok {
		tx, err = bt.BeginTx(ctx, opts)
	} else {
		if opts.Isolation != 0 || opts.ReadOnly {
			return nil, errors.New("countdriver: the driver does not support transaction options")
		}
		tx, err = cn.inner.Begin()
	}
	if counted(err) {
		cn.c.count(Other)
	}
	if err != nil {
		return nil, err
	}
	return &countedTx{inner: tx, c: cn.c}, nil
}

func (cn *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ec, ok := cn.inner.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := ec.ExecContext(ctx, query, args)
	if counted(err) {
		cn.c.count(Classify(query))
	}
	return res, err
}

func (cn *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	qc, ok := cn.inner.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := qc.QueryContext(ctx, query, args)
	if counted(err) {
		cn.c.count(Classify(query))
	}
	return rows, err
}

func (cn *conn) Ping(ctx context.Context) error {
	if p, ok := cn.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (cn *conn) ResetSession(ctx context.Context) error {
	if r, ok := cn.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (cn *conn) IsValid() bool {
	if v, ok := cn.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// CheckNamedValue forwards to the inner connection's checker; without
// one, ErrSkip makes database/sql apply its default conversion, as it
// would on the bare driver.
func (cn *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := cn.inner.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// countedTx counts COMMIT and ROLLBACK as Other statements.
type countedTx struct {
	inner driver.Tx
	c     *Counter
}

func (t *countedTx) Commit() error {
	err := t.inner.Commit()
	if counted(err) {
		t.c.count(Other)
	}
	return err
}

func (t *countedTx) Rollback() error {
	err := t.inner.Rollback()
	if counted(err) {
		t.c.count(Other)
	}
	return err
}

type stmt struct {
	inner driver.Stmt
	conn  *conn
	kind  Kind
}

var (
	_ driver.Stmt              = (*stmt)(nil)
	_ driver.StmtExecContext   = (*stmt)(nil)
	_ driver.StmtQueryContext  = (*stmt)(nil)
	_ driver.NamedValueChecker = (*stmt)(nil)
)

func (s *stmt) Close() error  { return s.inner.Close() }
func (s *stmt) NumInput() int { return s.inner.NumInput() }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	res, err := s.inner.Exec(args)
	if counted(err) {
		s.conn.c.count(s.kind)
	}
	return res, err
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	rows, err := s.inner.Query(args)
	if counted(err) {
		s.conn.c.count(s.kind)
	}
	return rows, err
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	var res driver.Result
	var err error
	if ec, ok := s.inner.(driver.StmtExecContext); ok {
		res, err = ec.ExecContext(ctx, args)
	} else {
		var vals []driver.Value
		if vals, err = values(args); err == nil {
			res, err = s.inner.Exec(vals)
		}
	}
	if counted(err) {
		s.conn.c.count(s.kind)
	}
	return res, err
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	var rows driver.Rows
	var err error
	if qc, ok := s.inner.(driver.StmtQueryContext); ok {
		rows, err = qc.QueryContext(ctx, args)
	} else {
		var vals []driver.Value
		if vals, err = values(args); err == nil {
			rows, err = s.inner.Query(vals)
		}
	}
	if counted(err) {
		s.conn.c.count(s.kind)
	}
	return rows, err
}

// CheckNamedValue uses the checker database/sql would pick on the bare
// driver: the statement's, else the connection's, else (ErrSkip) the
// default conversion. Statements that rely on driver.ColumnConverter
// alone are not supported; none of the drivers compared here does.
func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := s.inner.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return s.conn.CheckNamedValue(nv)
}

func values(args []driver.NamedValue) ([]driver.Value, error) {
	out := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("countdriver: the driver does not support named arguments")
		}
		out[i] = a.Value
	}
	return out, nil
}
