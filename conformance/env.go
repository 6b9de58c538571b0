package conformance

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// testCase is one behaviour the suite checks. run returns nil on success,
// an error made by skipf when the case does not apply, and any other error
// on failure; its message is the case's report.
type testCase struct {
	name string
	// serial cases run alone: they hold database-wide locks on some
	// databases (SQLite's locked mode holds the write lock).
	serial bool
	run    func(ctx context.Context, e *env) error
}

// cleanupTimeout bounds the cleanup of one case after its context ended.
const cleanupTimeout = 30 * time.Second

// env is what one case works with: the database, its dialect, the table,
// and the cleanup of everything the case created.
type env struct {
	cfg *config
	db  *sql.DB
	d   dialect.Dialect

	mu       sync.Mutex
	table    *visit.Table // the case's table, set by caseTable
	keys     map[string]bool
	cleanups []func(ctx context.Context) error
}

func newEnv(cfg *config) *env {
	return &env{cfg: cfg, db: cfg.db, d: cfg.d, keys: map[string]bool{}}
}

// onCleanup registers f to run when the case ends, last registered first.
func (e *env) onCleanup(f func(ctx context.Context) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}

// cleanup runs the registered cleanups, last first, under a context that
// outlives the case's cancellation, then removes the rows the case created
// in the caller's table.
func (e *env) cleanup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	e.mu.Lock()
	fs := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	var errs []error
	for i := len(fs) - 1; i >= 0; i-- {
		if err := fs[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := e.deleteTracked(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// caseTable returns the table the case works on: the caller's table given
// with WithTable, or a fresh scratch table created with visit.Migrate.
func (e *env) caseTable(ctx context.Context) (visit.Table, error) {
	e.mu.Lock()
	t := e.table
	e.mu.Unlock()
	if t != nil {
		return *t, nil
	}
	var tab visit.Table
	if e.cfg.realTable {
		tab = e.cfg.table
	} else {
		var err error
		if tab, err = e.scratchTable(ctx); err != nil {
			return visit.Table{}, err
		}
	}
	e.mu.Lock()
	e.table = &tab
	e.mu.Unlock()
	return tab, nil
}

// scratchName returns a table layout with a fresh random name, in the
// caller's schema and with the caller's column names, that is dropped when
// the case ends. It creates nothing.
func (e *env) scratchName() visit.Table {
	schema, _ := e.cfg.table.SchemaAndName()
	name := "vsconf_" + randomHex(6)
	if schema != "" {
		name = schema + "." + name
	}
	t := e.cfg.table.WithName(name)
	e.onCleanup(func(ctx context.Context) error {
		if _, err := e.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+e.d.Quote(t.Name)); err != nil {
			return fmt.Errorf("drop scratch table %s: %w", t.Name, err)
		}
		return nil
	})
	return t
}

// scratchTable returns a fresh scratch table created with visit.Migrate,
// dropped when the case ends.
func (e *env) scratchTable(ctx context.Context) (visit.Table, error) {
	t := e.scratchName()
	if _, err := e.migrate(ctx, t); err != nil {
		return visit.Table{}, fmt.Errorf("create scratch table: %w", err)
	}
	return t, nil
}

// migrate runs visit.Migrate on t, again after an error the dialect
// classifies as retryable, with a jittered backoff, until ctx is done. The
// suite's own migrations run one at a time, since cases run concurrently:
// on SQLite a migration's transaction, which reads the catalog before it
// writes, fails at once with SQLITE_BUSY, without waiting for
// busy_timeout, when another connection is writing, and with
// SQLITE_BUSY_SNAPSHOT when another connection wrote in between.
func (e *env) migrate(ctx context.Context, t visit.Table) ([]string, error) {
	e.cfg.ddl.Lock()
	defer e.cfg.ddl.Unlock()
	backoff := 5 * time.Millisecond
	for {
		ran, err := visit.Migrate(ctx, e.db, e.d, t)
		if err == nil || e.d.Classify(err) != dialect.Retryable {
			return ran, err
		}
		timer := time.NewTimer(backoff/2 + mrand.N(backoff))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, err
		case <-timer.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// trackToken records a token whose row the case may have created in t,
// so that cleanup deletes it when t is the caller's table. Both stored
// forms are recorded: neither can be the key of a row the case did not
// create.
func (e *env) trackToken(t visit.Table, tok string) {
	if tok == "" {
		return
	}
	e.trackKey(t, tok)
	e.trackKey(t, visit.HashToken(tok))
}

// trackKey records a stored key whose row the case created in t, when t
// is the caller's table; scratch tables are dropped whole instead.
func (e *env) trackKey(t visit.Table, key string) {
	if !e.cfg.realTable || t.Name != e.cfg.table.Name {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keys[key] = true
}

// deleteTracked deletes the rows of the tracked keys from the caller's
// table.
func (e *env) deleteTracked(ctx context.Context) error {
	e.mu.Lock()
	keys := make([]any, 0, len(e.keys))
	for k := range e.keys {
		keys = append(keys, k)
	}
	e.mu.Unlock()
	if len(keys) == 0 {
		return nil
	}
	t := e.cfg.table
	const chunk = 100
	for len(keys) > 0 {
		n := min(chunk, len(keys))
		q := "DELETE FROM " + e.d.Quote(t.Name) + " WHERE " + e.d.Quote(t.Key) + " IN (?" + strings.Repeat(", ?", n-1) + ")"
		if _, err := e.exec(ctx, e.db, q, keys[:n]...); err != nil {
			return fmt.Errorf("delete the rows the suite created in %s: %w", t.Name, err)
		}
		keys = keys[n:]
	}
	return nil
}

// caseStore gives a case its own table and a store on it, with opts.
func (e *env) caseStore(ctx context.Context, opts ...session.Option) (*store, error) {
	t, err := e.caseTable(ctx)
	if err != nil {
		return nil, err
	}
	return e.open(ctx, e.db, t, opts...)
}

// caseSession gives a case its own table, a store on it with opts, and a
// session of values saved there.
func (e *env) caseSession(ctx context.Context, values map[string]any, opts ...session.Option) (*store, *session.Session, error) {
	st, err := e.caseStore(ctx, opts...)
	if err != nil {
		return nil, nil, err
	}
	sess, err := st.saveNew(ctx, values)
	return st, sess, err
}

// store is a Store whose Save and Renew record the tokens they write, for
// cleanup.
type store struct {
	*session.Store
	e *env
	t visit.Table
}

// open opens a Store on t of db, closed when the case ends.
func (e *env) open(ctx context.Context, db *sql.DB, t visit.Table, opts ...session.Option) (*store, error) {
	st, err := session.Open(ctx, db, e.d, append([]session.Option{session.WithTable(t)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("session.Open: %w", err)
	}
	e.onCleanup(func(context.Context) error { return st.Close() })
	return &store{Store: st, e: e, t: t}, nil
}

// Save saves sess and records its token.
func (s *store) Save(ctx context.Context, sess *session.Session) error {
	err := s.Store.Save(ctx, sess)
	s.e.trackToken(s.t, sess.Token())
	return err
}

// Renew renews sess and records its new token.
func (s *store) Renew(ctx context.Context, sess *session.Session) error {
	err := s.Store.Renew(ctx, sess)
	s.e.trackToken(s.t, sess.Token())
	return err
}

// saveNew saves a new session holding values and returns it.
func (s *store) saveNew(ctx context.Context, values map[string]any) (*session.Session, error) {
	sess := s.New()
	for k, v := range values {
		sess.Set(k, v)
	}
	if err := s.Save(ctx, sess); err != nil {
		return nil, fmt.Errorf("save a new session: %w", err)
	}
	if sess.Token() == "" {
		return nil, errors.New("a saved session with values has no token")
	}
	return sess, nil
}

// clockedStore gives a case its own table and a store on it whose clock
// starts at baseTime and moves only when the case moves it; opts come
// after the clock.
func (e *env) clockedStore(ctx context.Context, opts ...session.Option) (visit.Table, *clock, *store, error) {
	t, err := e.caseTable(ctx)
	if err != nil {
		return visit.Table{}, nil, nil, err
	}
	clk := newClock(baseTime)
	st, err := e.open(ctx, e.db, t, append([]session.Option{session.WithClock(clk.Now)}, opts...)...)
	if err != nil {
		return visit.Table{}, nil, nil, err
	}
	return t, clk, st, nil
}

// secondPool returns a pool for a second application instance: one opened
// with the WithOpener function, closed when the case ends, or else the
// caller's pool.
func (e *env) secondPool(ctx context.Context) (*sql.DB, error) {
	if e.cfg.opener == nil {
		return e.db, nil
	}
	db, err := e.cfg.opener(ctx)
	if err != nil {
		return nil, fmt.Errorf("open a second pool: %w", err)
	}
	e.onCleanup(func(context.Context) error { return db.Close() })
	return db, nil
}

// pinnedConn returns one connection of db for the case alone. When the
// case ends it is closed rather than returned to the pool, so that session
// settings the case changed never reach the caller's other work.
func (e *env) pinnedConn(ctx context.Context) (*sql.Conn, error) {
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("take a connection: %w", err)
	}
	e.onCleanup(func(context.Context) error {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		_ = conn.Close()
		return nil
	})
	return conn, nil
}

// exec runs query, written with ? placeholders, on q.
func (e *env) exec(ctx context.Context, q visit.Querier, query string, args ...any) (sql.Result, error) {
	query, err := e.d.Placeholder().ReplacePlaceholders(query)
	if err != nil {
		return nil, err
	}
	return q.ExecContext(ctx, query, args...)
}

// queryRow runs query, written with ? placeholders, on q.
func (e *env) queryRow(ctx context.Context, q visit.Querier, query string, args ...any) *sql.Row {
	if replaced, err := e.d.Placeholder().ReplacePlaceholders(query); err == nil {
		query = replaced
	} // else the database rejects the query and Scan reports it
	return q.QueryRowContext(ctx, query, args...)
}

// stored is one row as the database holds it.
type stored struct {
	exists  bool
	data    []byte // nil when NULL
	created time.Time
	expiry  time.Time
	version int64
}

// row reads the row of key in t directly, bypassing the engine.
func (e *env) row(ctx context.Context, t visit.Table, key string) (stored, error) {
	q := e.d.Quote
	var r stored
	var created, expiry any
	err := e.queryRow(ctx, e.db, "SELECT "+q(t.Data)+", "+q(t.Created)+", "+q(t.Expiry)+", "+q(t.Version)+
		" FROM "+q(t.Name)+" WHERE "+q(t.Key)+" = ?", key).Scan(&r.data, &created, &expiry, &r.version)
	if errors.Is(err, sql.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("read a row directly: %w", err)
	}
	r.exists = true
	if r.created, err = e.d.DecodeTime(created); err != nil {
		return r, fmt.Errorf("decode created: %w", err)
	}
	if r.expiry, err = e.d.DecodeTime(expiry); err != nil {
		return r, fmt.Errorf("decode expiry: %w", err)
	}
	return r, nil
}

// rowOf reads the row of a token stored in hashed mode.
func (e *env) rowOf(ctx context.Context, t visit.Table, tok string) (stored, error) {
	return e.row(ctx, t, visit.HashToken(tok))
}

// countAll counts every row of t; only for tables the case owns.
func (e *env) countAll(ctx context.Context, t visit.Table) (int, error) {
	var n int
	if err := e.db.QueryRowContext(ctx, "SELECT count(*) FROM "+e.d.Quote(t.Name)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count rows: %w", err)
	}
	return n, nil
}

// clock is a settable clock for session.WithClock and the sweeper.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

// Now returns the clock's time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Add moves the clock by d.
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// baseTime is the start of most cases' clocks: five years ahead, so that
// on the caller's table the application's own sweeper, which goes by the
// real time, never takes the suite's rows for expired ones; with every
// digit down to the nanosecond set, so that precision losses show.
var baseTime = time.Date(time.Now().Year()+5, 3, 4, 5, 6, 7, 123456789, time.UTC)

// us formats an instant with microseconds, for messages.
func us(t time.Time) string { return t.Format("2006-01-02T15:04:05.000000Z07:00") }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
