package sweeper

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/internal/wait"
	"github.com/visitsession/visitsession/visit"
)

// How far before the end of the previous clear pass the next one starts,
// and how often a pass starts from the oldest expiry instead; see the
// package documentation.
const (
	clearRescan    = time.Hour
	clearFullEvery = 24 * time.Hour
)

// Sweeper clears or deletes the expired rows of one visit table, in small
// batches, under a lease shared with the other instances of the
// application. It is safe for concurrent use; runs of one Sweeper never
// overlap.
type Sweeper struct {
	db    *sql.DB
	d     dialect.Dialect
	t     visit.Table
	st    dialect.SweepStatements
	cfg   config
	owner string
	// turn is held by the run in progress, and guards the fields below.
	turn chan struct{}
	// clearedTo is the cutoff of the last clear pass that completed, and
	// lastFullClear that of the last one that started from the oldest
	// expiry; zero when there was none.
	clearedTo, lastFullClear time.Time
}

// New returns a Sweeper for table t of db, whose database d describes. It
// builds every statement once and checks opts; invalid options give an
// error wrapping [ErrInvalidOptions], an invalid table one wrapping
// [visit.ErrInvalidName]. New runs no statement and creates nothing: the
// table must exist, created by [visit.Migrate] with its expiry index.
func New(db *sql.DB, d dialect.Dialect, t visit.Table, opts Options) (*Sweeper, error) {
	if db == nil {
		return nil, invalid("nil *sql.DB")
	}
	if d == nil {
		return nil, invalid("nil dialect")
	}
	cfg, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	st, err := d.Sweep(t, cfg.batchSize)
	if err != nil {
		return nil, fmt.Errorf("sweeper: new: %w", err)
	}
	return &Sweeper{
		db:    db,
		d:     d,
		t:     t,
		st:    st,
		cfg:   cfg,
		owner: newOwner(),
		turn:  make(chan struct{}, 1),
	}, nil
}

// Owner returns the name this Sweeper writes into the lease row while it
// holds the lease: host name, process id and a random suffix.
func (s *Sweeper) Owner() string { return s.owner }

// SweepOnce runs one sweep now and returns its report. It takes the lease
// first; when another instance holds it, the report says Skipped and the
// error is nil. Then it deletes the rows past the retention period, unless
// DeleteAfter is [Never], and clears the data of expired rows when
// ClearData is set, batch after batch until a batch finds fewer than
// BatchSize rows. Finally it releases the lease.
//
// Cancelling ctx stops the run between two batches; the batch in flight
// finishes (see [Options.BatchTimeout]) and the lease is released. The
// error is then ctx's error, wrapped. Other errors: [ErrLeaseLost], and
// driver errors, wrapped, after MaxRetries retries of retryable ones. A
// failed run has committed the batches its report counts and nothing else.
func (s *Sweeper) SweepOnce(ctx context.Context) (Report, error) {
	rep := s.sweep(ctx)
	return rep, rep.Err
}

// Run sweeps at once and then every Interval plus a random Jitter, until
// ctx is cancelled. It reports every run to Hook and Logger, and keeps
// going after a failed run. After ctx is cancelled, it lets the batch in
// flight finish, releases the lease and returns nil. Run starts no
// goroutine.
func (s *Sweeper) Run(ctx context.Context) error {
	s.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "sweeper: started",
		slog.String("table", s.t.Name), slog.String("owner", s.owner),
		slog.Duration("interval", s.cfg.interval))
	for ctx.Err() == nil {
		s.sweep(ctx)
		next := s.cfg.interval
		if s.cfg.jitter > 0 {
			next += rand.N(s.cfg.jitter)
		}
		if wait.Sleep(ctx, next) != nil {
			break
		}
	}
	s.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "sweeper: stopped", slog.String("table", s.t.Name))
	return nil
}

// sweep runs one sweep and reports it.
func (s *Sweeper) sweep(ctx context.Context) Report {
	start := time.Now()
	rep := Report{Started: s.cfg.clock()}
	select {
	case s.turn <- struct{}{}:
		rep.Started = s.cfg.clock()
		rep.Err = s.sweepTurn(ctx, &rep)
		<-s.turn
	case <-ctx.Done():
		rep.Err = fmt.Errorf("sweeper: sweep %s: %w", s.t.Name, ctx.Err())
	}
	rep.Duration = time.Since(start)
	s.report(ctx, rep)
	return rep
}

// sweepTurn runs the phases of a sweep under the lease. The caller holds
// s.turn.
func (s *Sweeper) sweepTurn(ctx context.Context, rep *Report) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sweeper: sweep %s: %w", s.t.Name, err)
	}
	now := rep.Started
	l := lease{held: true}
	if s.cfg.leaseTTL > 0 {
		var err error
		if l, err = s.acquire(ctx, rep, now); err != nil {
			return fmt.Errorf("sweeper: acquire lease on %s: %w", s.t.Name, err)
		}
		if !l.held {
			rep.Skipped, rep.Holder, rep.HeldUntil = true, l.holder, l.until
			return nil
		}
		defer s.release(ctx, rep, &l)
	}
	c := &sweepConn{s: s}
	defer c.release()
	if s.cfg.deleteAfter != Never {
		p := phase{name: "delete", stmt: s.st.Delete, bound: s.st.DeleteBound, count: &rep.Deleted}
		if err := s.runPhase(ctx, rep, &l, c, p, time.Time{}, now.Add(-s.cfg.deleteAfter)); err != nil {
			return err
		}
	}
	if s.cfg.clearData {
		// Cleared rows keep their expiry, so a pass from the oldest
		// expiry would step over all of them; most passes start an hour
		// before the end of the previous one instead.
		full := s.lastFullClear.IsZero() || now.Sub(s.lastFullClear) >= clearFullEvery
		from := time.Time{}
		if !full {
			from = s.clearedTo.Add(-clearRescan)
		}
		p := phase{name: "clear", stmt: s.st.Clear, bound: s.st.ClearBound, count: &rep.Cleared}
		if err := s.runPhase(ctx, rep, &l, c, p, from, now); err != nil {
			return err
		}
		s.clearedTo = now
		if full {
			s.lastFullClear = now
		}
	}
	return nil
}

// phase is one kind of batch: delete or clear.
type phase struct {
	name  string
	stmt  string
	bound string
	count *int64
}

// runPhase runs batches of p over rows with expiry from from to cutoff
// until one finds fewer than BatchSize rows to change.
func (s *Sweeper) runPhase(ctx context.Context, rep *Report, l *lease, c *sweepConn, p phase, from, cutoff time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sweeper: sweep %s: %w", s.t.Name, err)
		}
		if s.cfg.leaseTTL > 0 {
			if err := s.renew(ctx, rep, l, c.querier()); err != nil {
				return err
			}
		}
		start := time.Now()
		var b batchResult
		err := s.retry(ctx, rep, p.name+" batch", func(ctx context.Context) error {
			var err error
			b, err = s.batch(ctx, c, p, from, cutoff)
			return err
		})
		if err != nil {
			return fmt.Errorf("sweeper: %s batch on %s: %w", p.name, s.t.Name, err)
		}
		rep.Batches++
		*p.count += int64(b.rows)
		s.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "sweeper: batch",
			slog.String("table", s.t.Name), slog.String("phase", p.name), slog.Int("rows", b.rows),
			slog.Duration("duration", time.Since(start)))
		if !b.more {
			return nil
		}
		from = b.next
		if err := wait.Sleep(ctx, s.cfg.pause); err != nil {
			return fmt.Errorf("sweeper: sweep %s: %w", s.t.Name, err)
		}
	}
}

// batchResult is the outcome of one batch.
type batchResult struct {
	rows int       // rows changed
	more bool      // whether rows may be left, so that another batch should run
	next time.Time // where the next batch starts
}

// batchDB is what a batch runs on: the pool, or the connection a sweep
// holds.
type batchDB interface {
	visit.Querier
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// sweepConn is the connection a sweep holds for its batches where the
// dialect has a Setup statement: taken from the pool and set up at the
// first batch, reset and given back at the end of the sweep or after a
// failed batch (the next attempt takes one again), and closed instead
// when Reset fails. Without Setup, batches run on the pool.
type sweepConn struct {
	s    *Sweeper
	conn *sql.Conn
}

// querier returns the held connection, or the pool when none is held.
func (c *sweepConn) querier() visit.Querier {
	if c.conn != nil {
		return c.conn
	}
	return c.s.db
}

// get returns what the next batch runs on.
func (c *sweepConn) get(ctx context.Context) (batchDB, error) {
	if c.s.st.Setup == "" {
		return c.s.db, nil
	}
	if c.conn != nil {
		return c.conn, nil
	}
	conn, err := c.s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, c.s.st.Setup); err != nil {
		discard(conn)
		return nil, fmt.Errorf("setup: %w", err)
	}
	c.conn = conn
	return conn, nil
}

// release gives the held connection, if any, back to the pool after
// running Reset, or closes it when Reset fails.
func (c *sweepConn) release() {
	conn := c.conn
	if conn == nil {
		return
	}
	c.conn = nil
	timeout := c.s.cfg.batchTimeout
	if timeout <= 0 {
		timeout = defaultBatchTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	_, err := conn.ExecContext(ctx, c.s.st.Reset)
	cancel()
	if err != nil {
		discard(conn)
		return
	}
	_ = conn.Close()
}

// discard closes conn and keeps database/sql from reusing its driver
// connection, whose session state is unknown.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// batch runs one batch of p over rows with expiry from from to cutoff, on
// what c gives.
func (s *Sweeper) batch(ctx context.Context, c *sweepConn, p phase, from, cutoff time.Time) (b batchResult, err error) {
	db, err := c.get(ctx)
	if err != nil {
		return b, err
	}
	defer func() {
		if err != nil {
			c.release()
		}
	}()
	var q visit.Querier = db
	if s.st.Isolation != sql.LevelDefault {
		var tx *sql.Tx
		if tx, err = db.BeginTx(ctx, &sql.TxOptions{Isolation: s.st.Isolation}); err != nil {
			return b, err
		}
		defer func() {
			if err == nil {
				err = tx.Commit()
			} else {
				_ = tx.Rollback()
			}
		}()
		q = tx
	}
	switch {
	case s.st.Summary:
		// One row: the count and the largest expiry of the changed rows.
		// Locked rows are passed over rather than counted, so a full
		// batch means more rows may be left.
		var n int64
		var raw any
		if err := q.QueryRowContext(ctx, p.stmt, s.encode(from), s.encode(cutoff), LeaseKey).Scan(&n, &raw); err != nil {
			return b, err
		}
		b.rows, b.next, b.more = int(n), from, n >= int64(s.cfg.batchSize)
		if raw != nil {
			expiry, err := s.d.DecodeTime(raw)
			if err != nil {
				return b, fmt.Errorf("returned expiry: %w", err)
			}
			if expiry.After(b.next) {
				b.next = expiry
			}
		}
		return b, nil
	case s.st.Returning:
		return s.returning(ctx, q, p, from, cutoff)
	}
	// The bound query finds the expiry of the batch's last row; when it
	// finds none, fewer than a batch of rows are left, and this batch is
	// the last. The count of changed rows cannot tell: rows extended
	// meanwhile make a batch smaller without ending the work.
	to := cutoff
	var raw any
	err = q.QueryRowContext(ctx, p.bound, s.encode(from), s.encode(cutoff), LeaseKey).Scan(&raw)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return b, err
	default:
		if to, err = s.d.DecodeTime(raw); err != nil {
			return b, fmt.Errorf("bound: %w", err)
		}
		b.more = true
	}
	res, err := q.ExecContext(ctx, p.stmt, s.encode(from), s.encode(to), LeaseKey)
	if err != nil {
		return b, err
	}
	affected, err := res.RowsAffected()
	b.rows, b.next = int(affected), to
	return b, err
}

// returning runs a batch statement that returns the expiry of each row it
// changed. It passes over locked rows rather than count them, so a full
// batch means more rows may be left.
func (s *Sweeper) returning(ctx context.Context, q visit.Querier, p phase, from, cutoff time.Time) (b batchResult, err error) {
	rows, err := q.QueryContext(ctx, p.stmt, s.encode(from), s.encode(cutoff), LeaseKey)
	if err != nil {
		return b, err
	}
	defer rows.Close()
	b.next = from
	for rows.Next() {
		var raw any
		if err := rows.Scan(&raw); err != nil {
			return b, err
		}
		expiry, err := s.d.DecodeTime(raw)
		if err != nil {
			return b, fmt.Errorf("returned expiry: %w", err)
		}
		if expiry.After(b.next) {
			b.next = expiry
		}
		b.rows++
	}
	if err := rows.Err(); err != nil {
		return b, err
	}
	b.more = b.rows >= s.cfg.batchSize
	return b, rows.Close()
}

// retry runs f, and runs it again after a backoff while it fails with a
// retryable error, at most MaxRetries more times. Each attempt gets a
// context that ctx's cancellation does not reach, bounded by BatchTimeout;
// ctx's cancellation ends the backoff.
func (s *Sweeper) retry(ctx context.Context, rep *Report, op string, f func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := s.attempt(ctx, f)
		if err == nil {
			return nil
		}
		rep.Errors++
		if s.d.Classify(err) != dialect.Retryable || attempt >= s.cfg.maxRetries {
			return err
		}
		delay := backoff(attempt)
		s.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "sweeper: retrying",
			slog.String("table", s.t.Name), slog.String("op", op), slog.Int("attempt", attempt+1),
			slog.Duration("delay", delay), slog.Any("error", err))
		if serr := wait.Sleep(ctx, delay); serr != nil {
			return fmt.Errorf("%w (while retrying: %w)", serr, err)
		}
	}
}

func (s *Sweeper) attempt(ctx context.Context, f func(context.Context) error) error {
	ctx = context.WithoutCancel(ctx)
	if s.cfg.batchTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.batchTimeout)
		defer cancel()
	}
	return f(ctx)
}

// backoff returns the wait before retry number attempt+1: 50ms doubling
// up to 2s, each with up to 50% added at random.
func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt, 6)
	d = min(d, 2*time.Second)
	return d + rand.N(d/2+1)
}

// encode returns the driver argument for instant t.
func (s *Sweeper) encode(t time.Time) any {
	return s.d.EncodeTime(t.UTC().Truncate(time.Microsecond))
}

// report logs rep and passes it to the hook.
func (s *Sweeper) report(ctx context.Context, rep Report) {
	attrs := []slog.Attr{
		slog.String("table", s.t.Name),
		slog.Int64("deleted", rep.Deleted),
		slog.Int64("cleared", rep.Cleared),
		slog.Int("batches", rep.Batches),
		slog.Int("errors", rep.Errors),
		slog.Duration("duration", rep.Duration),
	}
	switch {
	case rep.Err != nil && ctx.Err() != nil && errors.Is(rep.Err, ctx.Err()):
		s.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "sweeper: run interrupted", attrs...)
	case rep.Err != nil:
		s.cfg.logger.LogAttrs(ctx, slog.LevelError, "sweeper: run failed", append(attrs, slog.Any("error", rep.Err))...)
	case rep.Skipped:
		s.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "sweeper: lease held elsewhere",
			slog.String("table", s.t.Name), slog.String("holder", rep.Holder), slog.Time("until", rep.HeldUntil))
	case rep.Rows() > 0:
		s.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "sweeper: swept",
			append(attrs, slog.Float64("rows_per_second", rep.RowsPerSecond()))...)
	default:
		s.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "sweeper: nothing to sweep", attrs...)
	}
	if s.cfg.hook != nil {
		s.cfg.hook(rep)
	}
}
