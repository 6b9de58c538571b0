package session

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/internal/codec"
	"github.com/visitsession/visitsession/internal/wait"
	"github.com/visitsession/visitsession/visit"
)

// Store runs sessions on one visit table. It is safe for concurrent use.
// Create it with Open and stop it with Close.
type Store struct {
	db      *sql.DB
	d       dialect.Dialect
	cfg     config
	indexed codec.Indexed // the codec, when it can check data whole and read values one by one
	patcher codec.Patcher // the codec, when it can write a save's data by patching the loaded data
	// freshBytes: the driver gives each scanned []byte a slice of its
	// own, which a load keeps without copying (dialect.FreshBytes).
	freshBytes bool
	// detachReads: reads outside a transaction run detached from their
	// context's cancellation (dialect.Dialect.DetachReads; readContext).
	detachReads bool
	stmts       statements
	closed      atomic.Bool
	counters    counters
	// guards maps each *heldLock on a dedicated connection to its
	// *connGuard.
	guards sync.Map
}

// stmt is one statement, prepared at Open where the dialect asks for it.
type stmt struct {
	query    string
	prepared *sql.Stmt
}

type statements struct {
	load, loadLocked, takeLock, insert, update, updateAny, renew, touch, end, del, forward stmt
}

func (st *statements) all() []*stmt {
	return []*stmt{&st.load, &st.loadLocked, &st.takeLock, &st.insert, &st.update, &st.updateAny, &st.renew, &st.touch, &st.end, &st.del, &st.forward}
}

// Open returns a Store over the visit table of db, spelled in dialect d.
//
// Open checks that the table and every column exist: it never creates or
// alters tables (use visit.Migrate or "visitsession migrate"), and a
// mismatch gives an error wrapping ErrSchema that names the missing column
// and the statement that adds it. Invalid options fail here. The
// statements are built once; where the dialect prefers it they are
// prepared once per connection. Open runs the dialect's query that tells
// whether reads may run detached from their context
// (dialect.Dialect.DetachReads; on SQLite, of the journal mode).
func Open(ctx context.Context, db *sql.DB, d dialect.Dialect, opts ...Option) (*Store, error) {
	if db == nil || d == nil {
		return nil, errors.New("session: open: db and dialect are required")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("session: open: %w", err)
	}
	in, err := visit.Inspect(ctx, db, d, cfg.table)
	if err != nil {
		return nil, fmt.Errorf("session: open: %w", err)
	}
	if !in.Exists {
		return nil, fmt.Errorf("%w: table %s does not exist; create it with \"visitsession migrate\" or visit.Migrate, or: %s",
			ErrSchema, cfg.table.Name, strings.Join(d.CreateTable(cfg.table), "; "))
	}
	if slices.Contains(in.Missing, visit.ColKey) {
		return nil, fmt.Errorf("%w: table %s has no key column %q and cannot be upgraded in place: %w",
			ErrSchema, cfg.table.Name, cfg.table.Key, visit.ErrNoKeyColumn)
	}
	if len(in.Missing) > 0 {
		c := in.Missing[0]
		return nil, fmt.Errorf("%w: table %s has no %s column %q; upgrade it with \"visitsession migrate\" or visit.Migrate, or: %s",
			ErrSchema, cfg.table.Name, c, cfg.table.ColumnName(c), d.AddColumn(cfg.table, c))
	}
	sql, err := d.Statements(cfg.table)
	if err != nil {
		return nil, fmt.Errorf("session: open: %w", err)
	}
	detach, err := detachReads(ctx, db, d)
	if err != nil {
		return nil, fmt.Errorf("session: open: %w", err)
	}
	s := &Store{db: db, d: d, cfg: cfg, detachReads: detach}
	s.indexed, _ = cfg.codec.(codec.Indexed)
	s.patcher, _ = cfg.codec.(codec.Patcher)
	s.freshBytes = dialect.FreshBytes(db.Driver())
	s.stmts = statements{
		load: stmt{query: sql.Load}, loadLocked: stmt{query: sql.LoadLocked}, takeLock: stmt{query: sql.TakeLock}, insert: stmt{query: sql.Insert},
		update: stmt{query: sql.Update}, updateAny: stmt{query: sql.UpdateAny}, renew: stmt{query: sql.Renew},
		touch: stmt{query: sql.Touch}, end: stmt{query: sql.End}, del: stmt{query: sql.Delete},
		forward: stmt{query: sql.Forward},
	}
	if d.Prepare() {
		for _, st := range s.stmts.all() {
			if st.query == "" || (st == &s.stmts.forward && cfg.renewGrace == 0) {
				continue // the dialect has none, or it never runs without a grace window
			}
			p, err := db.PrepareContext(ctx, st.query)
			if err != nil {
				s.closeStatements()
				return nil, fmt.Errorf("session: open: prepare: %w", err)
			}
			st.prepared = p
		}
	}
	return s, nil
}

// Close releases the prepared statements. It does not close the *sql.DB,
// which belongs to the application. Operations after Close give ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.closeStatements()
	return nil
}

func (s *Store) closeStatements() {
	for _, st := range s.stmts.all() {
		if st.prepared != nil {
			st.prepared.Close()
			st.prepared = nil
		}
	}
}

// Dialect returns the store's dialect.
func (s *Store) Dialect() dialect.Dialect { return s.d }

// Table returns the visit table the store works on.
func (s *Store) Table() visit.Table { return s.cfg.table }

// Mode returns the concurrency mode.
func (s *Store) Mode() Mode { return s.cfg.mode }

// IdleTimeout returns the configured idle timeout.
func (s *Store) IdleTimeout() time.Duration { return s.cfg.idleTimeout }

// now returns the clock's time in UTC, truncated to the microsecond that
// every database stores.
func (s *Store) now() time.Time { return s.cfg.clock().UTC().Truncate(time.Microsecond) }

// expiryFor returns the expiry a session created at created gets when
// used at now: now plus the idle timeout, capped by the absolute timeout.
func (s *Store) expiryFor(now, created time.Time) time.Time {
	exp := now.Add(s.cfg.idleTimeout)
	if s.cfg.absoluteTimeout > 0 {
		if limit := created.Add(s.cfg.absoluteTimeout); limit.Before(exp) {
			exp = limit
		}
	}
	return exp
}

// detachReads runs the dialect's query that tells whether reads may run
// detached from their context (dialect.Dialect.DetachReads). The answer
// is the database's (on SQLite, the file's journal mode), the same on
// every pooled connection.
func detachReads(ctx context.Context, db *sql.DB, d dialect.Dialect) (bool, error) {
	q, want := d.DetachReads()
	if q == "" {
		return false, nil
	}
	var got string
	if err := db.QueryRowContext(ctx, q).Scan(&got); err != nil {
		return false, fmt.Errorf("%s: %w", q, err)
	}
	return strings.EqualFold(got, want), nil
}

// readContext returns the context a read outside a transaction runs
// under: ctx, or, where the dialect lets such reads run detached
// (dialect.Dialect.DetachReads), ctx without its cancellation, once ctx
// is checked, so that neither database/sql nor the driver starts a
// goroutine to watch it. It gives ctx's error when ctx is done.
func (s *Store) readContext(ctx context.Context) (context.Context, error) {
	if !s.detachReads || ctx.Done() == nil {
		return ctx, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

// exec runs st in tx, or on q, or else on the pool, through its prepared
// form where there is one.
func (s *Store) exec(ctx context.Context, tx *sql.Tx, q querier, st *stmt, args ...any) (sql.Result, error) {
	switch {
	case tx != nil && st.prepared != nil:
		return tx.StmtContext(ctx, st.prepared).ExecContext(ctx, args...)
	case tx != nil:
		return tx.ExecContext(ctx, st.query, args...)
	case q != nil:
		return q.ExecContext(ctx, st.query, args...)
	case st.prepared != nil:
		return st.prepared.ExecContext(ctx, args...)
	}
	return s.db.ExecContext(ctx, st.query, args...)
}

// scanRow runs st, as exec does, and scans its first row into dest; it
// gives sql.ErrNoRows when there is none. It does what QueryRow and
// Row.Scan do, without the Row and its checks of dest.
func (s *Store) scanRow(ctx context.Context, tx *sql.Tx, q querier, st *stmt, args []any, dest []any) error {
	var rows *sql.Rows
	var err error
	switch {
	case tx != nil && st.prepared != nil:
		rows, err = tx.StmtContext(ctx, st.prepared).QueryContext(ctx, args...)
	case tx != nil:
		rows, err = tx.QueryContext(ctx, st.query, args...)
	case q != nil:
		rows, err = q.QueryContext(ctx, st.query, args...)
	case st.prepared != nil:
		rows, err = st.prepared.QueryContext(ctx, args...)
	default:
		rows, err = s.db.QueryContext(ctx, st.query, args...)
	}
	if err != nil {
		return err
	}
	if !rows.Next() {
		err = rows.Err()
		rows.Close()
		if err == nil {
			err = sql.ErrNoRows
		}
		return err
	}
	err = rows.Scan(dest...)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// querier is the executor a locked session holds: a *sql.Tx or *sql.Conn.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

var (
	_ querier = (*sql.Tx)(nil)
	_ querier = (*sql.Conn)(nil)
)

// Backoff bounds of statement retries and of merge-mode attempts.
const (
	retryBackoffFirst = 2 * time.Millisecond
	retryBackoffMax   = 200 * time.Millisecond
	mergeSlotMin      = 100 * time.Microsecond
	mergeBackoffMax   = time.Second
)

// retry runs f, running it again after a retryable error up to the
// configured number of times with jittered exponential backoff, within
// ctx's deadline: it gives up at once, returning f's last error, when ctx
// is done or its deadline would pass during the wait. Statements of a
// held transaction are not retried (see [Store.affected]).
func (s *Store) retry(ctx context.Context, op string, f func() error) error {
	backoff := retryBackoffFirst
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || attempt >= s.cfg.maxRetries || s.d.Classify(err) != dialect.Retryable {
			return err
		}
		if pause(ctx, jitter(backoff)) != nil {
			return err
		}
		s.counters.retries.Add(1)
		if h := s.cfg.hooks.OnRetry; h != nil {
			h(op, err)
		}
		backoff = min(backoff*2, retryBackoffMax)
	}
}

// jitter returns a duration uniformly drawn from [d/2, 3d/2).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d)
}

// mergeBackoff returns the wait before merge attempt attempt+1. After the
// first lost attempt there is none: with two writers, the usual case, the
// winner has committed by the time the loser learns it lost, and an
// immediate reload and write succeed. After a later one it is drawn
// uniformly from [0, slot·2^(attempt+2)) and is at most mergeBackoffMax,
// where slot is how long the lost attempt took (see rebaseFromStore). Only
// one of the writers that read a version can write the next, so n
// concurrent writers of one session need about n slots; doubling the
// window with each lost attempt (binary exponential backoff, in the
// database's own time) spreads them out whatever the database's speed. With the default eight attempts, 50
// writers that all read one version all get through (the test of this is
// TestConcurrentAppend, and TestStressConcurrentAppend repeats it).
func mergeBackoff(attempt int, slot time.Duration) time.Duration {
	if attempt <= 1 {
		return 0
	}
	slot = max(slot, mergeSlotMin)
	shift := attempt + 2
	w := mergeBackoffMax
	if shift < 32 && slot < mergeBackoffMax>>shift {
		w = slot << shift
	}
	return rand.N(w)
}

// pauseWithin waits for d, shortened to half the time left before ctx's
// deadline so that the next attempt still has time to run. It returns
// ctx's error when ctx is done first.
func pauseWithin(ctx context.Context, d time.Duration) error {
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return wait.Sleep(ctx, d)
}

// pause waits for d, unless ctx is done first or its deadline comes
// before d has passed: then it returns at once with ctx's error, or with
// context.DeadlineExceeded, since an attempt after the wait could not
// finish in time anyway.
func pause(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return context.DeadlineExceeded
	}
	return wait.Sleep(ctx, d)
}

func (s *Store) checkOpen() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// checkOpenFor is checkOpen for an operation on sess, which must be
// locked: on a closed store it also rolls back the row lock sess holds, so
// that a failed Save, Renew, Destroy or Touch never leaves it held.
func (s *Store) checkOpenFor(ctx context.Context, sess *Session) error {
	if err := s.checkOpen(); err != nil {
		if sess.lock != nil {
			_ = s.release(ctx, sess, false)
		}
		return err
	}
	return nil
}
