package conformance

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/sweeper"
	"github.com/visitsession/visitsession/visit"
)

// The sweeper cases always run on scratch tables: a sweep changes every
// expired row of its table, including rows the suite did not create.

// sweepBatch is the batch size of the sweeper cases, small so that a run
// takes several batches.
const sweepBatch = 5

// sweepIdle is the idle timeout of the sessions the sweeper cases create.
const sweepIdle = time.Hour

// sweepFixture is a scratch table holding sessions of known expiry, and
// the sweeper's cutoff.
type sweepFixture struct {
	t       visit.Table
	st      *store
	clk     *clock
	cutoff  time.Time
	expired []string // tokens of sessions expired at cutoff, oldest first
	live    []string // tokens of sessions live at cutoff
	rows    map[string]stored
}

// newSweepFixture creates nExpired sessions expired at the cutoff (the last
// one exactly at it) and nLive sessions live at it (the first one only 1µs
// past it), and records their rows.
func newSweepFixture(ctx context.Context, e *env, nExpired, nLive int) (*sweepFixture, error) {
	t, err := e.scratchTable(ctx)
	if err != nil {
		return nil, err
	}
	f := &sweepFixture{t: t, clk: newClock(baseTime), cutoff: baseTime.Truncate(time.Microsecond).Add(3 * time.Hour), rows: map[string]stored{}}
	f.st, err = e.open(ctx, e.db, t, session.WithClock(f.clk.Now), session.WithIdleTimeout(sweepIdle), session.WithAbsoluteTimeout(0))
	if err != nil {
		return nil, err
	}
	add := func(expiry time.Time) (string, error) {
		f.clk.Set(expiry.Add(-sweepIdle))
		sess, err := f.st.saveNew(ctx, map[string]any{"expiry": expiry.Format(time.RFC3339Nano)})
		if err != nil {
			return "", err
		}
		r, err := e.rowOf(ctx, t, sess.Token())
		if err != nil {
			return "", err
		}
		if !r.expiry.Equal(expiry) {
			return "", fmt.Errorf("set up: a session meant to expire at %s expires at %s", us(expiry), us(r.expiry))
		}
		f.rows[sess.Token()] = r
		return sess.Token(), nil
	}
	for i := range nExpired {
		tok, err := add(f.cutoff.Add(-time.Duration(nExpired-1-i) * time.Minute))
		if err != nil {
			return nil, err
		}
		f.expired = append(f.expired, tok)
	}
	for i := range nLive {
		tok, err := add(f.cutoff.Add(time.Microsecond + time.Duration(i)*time.Minute))
		if err != nil {
			return nil, err
		}
		f.live = append(f.live, tok)
	}
	return f, nil
}

// sweeperFor returns a sweeper on f's table whose clock reads the cutoff.
func (f *sweepFixture) sweeperFor(e *env, opts sweeper.Options) (*sweeper.Sweeper, error) {
	opts.BatchSize = sweepBatch
	opts.Pause = -1
	opts.Logger = slog.New(slog.DiscardHandler)
	if opts.Clock == nil {
		opts.Clock = func() time.Time { return f.cutoff }
	}
	sw, err := sweeper.New(e.db, e.d, f.t, opts)
	if err != nil {
		return nil, fmt.Errorf("sweeper.New: %w", err)
	}
	return sw, nil
}

// checkUntouched checks that the rows of toks are as they were created.
func (f *sweepFixture) checkUntouched(ctx context.Context, e *env, toks []string, what string) error {
	for _, tok := range toks {
		r, err := e.rowOf(ctx, f.t, tok)
		if err != nil {
			return err
		}
		want := f.rows[tok]
		if !r.exists || !bytes.Equal(r.data, want.data) || r.version != want.version || !r.expiry.Equal(want.expiry) {
			return fmt.Errorf("the sweep changed %s (expiry %s, cutoff %s): exists=%v, data kept=%v, version %d (was %d)",
				what, us(want.expiry), us(f.cutoff), r.exists, bytes.Equal(r.data, want.data), r.version, want.version)
		}
	}
	return nil
}

// sweeperDeleteExpired: the default sweep deletes every row expired at its
// clock, at the microsecond, in batches, and leaves live rows alone.
func sweeperDeleteExpired(ctx context.Context, e *env) error {
	f, err := newSweepFixture(ctx, e, 2*sweepBatch+2, 3)
	if err != nil {
		return err
	}
	sw, err := f.sweeperFor(e, sweeper.Options{})
	if err != nil {
		return err
	}
	rep, err := sw.SweepOnce(ctx)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	if rep.Deleted != int64(len(f.expired)) || rep.Cleared != 0 {
		return fmt.Errorf("the sweep reported %d deleted and %d cleared, want %d deleted", rep.Deleted, rep.Cleared, len(f.expired))
	}
	for i, tok := range f.expired {
		if r, err := e.rowOf(ctx, f.t, tok); err != nil {
			return err
		} else if r.exists {
			return fmt.Errorf("the sweep left expired row %d of %d (expiry %s, cutoff %s)", i+1, len(f.expired), us(f.rows[tok].expiry), us(f.cutoff))
		}
	}
	if err := f.checkUntouched(ctx, e, f.live, "a live row"); err != nil {
		return err
	}
	f.clk.Set(f.cutoff)
	for _, tok := range f.live {
		if l, err := f.st.Load(ctx, tok); err != nil || l.IsNew() {
			return fmt.Errorf("a live session did not load after the sweep: new=%v err=%v", l.IsNew(), err)
		}
	}
	return nil
}

// sweeperClearExpired: with ClearData and no deletion, the sweep sets the
// data of expired rows to NULL, keeps the rows and their expiry, skips
// rows already cleared, and leaves live rows alone.
func sweeperClearExpired(ctx context.Context, e *env) error {
	f, err := newSweepFixture(ctx, e, 2*sweepBatch+1, 3)
	if err != nil {
		return err
	}
	// A session ended by logout has no data to clear.
	f.clk.Set(f.cutoff.Add(-30 * time.Minute))
	ended, err := f.st.Load(ctx, f.live[len(f.live)-1])
	if err != nil || ended.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", ended.IsNew(), err)
	}
	if err := f.st.Destroy(ctx, ended); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	f.live = f.live[:len(f.live)-1]
	sw, err := f.sweeperFor(e, sweeper.Options{ClearData: true, DeleteAfter: sweeper.Never})
	if err != nil {
		return err
	}
	rep, err := sw.SweepOnce(ctx)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	if rep.Cleared != int64(len(f.expired)) || rep.Deleted != 0 {
		return fmt.Errorf("the sweep reported %d cleared and %d deleted, want %d cleared (a row ended by logout has nothing to clear)",
			rep.Cleared, rep.Deleted, len(f.expired))
	}
	for i, tok := range f.expired {
		r, err := e.rowOf(ctx, f.t, tok)
		if err != nil {
			return err
		}
		want := f.rows[tok]
		if !r.exists || r.data != nil || !r.expiry.Equal(want.expiry) {
			return fmt.Errorf("expired row %d of %d after a clearing sweep: exists=%v, data NULL=%v, expiry %s (was %s); want the row kept with NULL data",
				i+1, len(f.expired), r.exists, r.data == nil, us(r.expiry), us(want.expiry))
		}
	}
	return f.checkUntouched(ctx, e, f.live, "a live row")
}

// sweeperExtendedDuringSweep: a session extended by another application
// instance after a sweep has begun is not deleted, even though it had
// expired at the sweep's clock: each batch re-checks expiry in the
// statement that deletes. The extensions run from the sweeper's Clock,
// which the sweeper reads after it has chosen its cutoff.
func sweeperExtendedDuringSweep(ctx context.Context, e *env) error {
	f, err := newSweepFixture(ctx, e, 4*sweepBatch, 0)
	if err != nil {
		return err
	}
	// The application instance: its clock is 30 minutes behind the
	// sweeper's, so these sessions are still live there.
	appClk := newClock(f.cutoff.Add(-30 * time.Minute))
	app, err := e.open(ctx, e.db, f.t, session.WithClock(appClk.Now), session.WithIdleTimeout(4*sweepIdle),
		session.WithAbsoluteTimeout(0))
	if err != nil {
		return err
	}
	var (
		mu       sync.Mutex
		calls    int
		next     = len(f.expired) - 1 // extend the newest first: batches go oldest first
		extended = map[string]bool{}
		extErr   error
	)
	const maxExtended = sweepBatch
	clockFn := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 || len(extended) >= maxExtended || next < 0 || extErr != nil {
			return f.cutoff
		}
		tok := f.expired[next]
		next--
		l, err := app.Load(ctx, tok)
		switch {
		case err != nil:
			extErr = err
		case l.IsNew(): // already swept, or not live for the application
		default:
			if extErr = app.Touch(ctx, l); extErr == nil {
				extended[tok] = true
			}
		}
		return f.cutoff
	}
	sw, err := f.sweeperFor(e, sweeper.Options{Clock: clockFn})
	if err != nil {
		return err
	}
	rep, err := sw.SweepOnce(ctx)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if extErr != nil {
		return fmt.Errorf("extend a session during the sweep: %w", extErr)
	}
	if len(extended) == 0 {
		return fmt.Errorf("set up: no session was extended during the sweep (the sweeper read its clock %d times)", calls)
	}
	for tok := range extended {
		r, err := e.rowOf(ctx, f.t, tok)
		if err != nil {
			return err
		}
		if !r.exists || !bytes.Equal(r.data, f.rows[tok].data) {
			return fmt.Errorf("a session extended while the sweep ran was deleted or cleared (exists=%v): batch statements must re-check expiry <= cutoff on the rows they change", r.exists)
		}
	}
	var deleted int64
	for _, tok := range f.expired {
		if extended[tok] {
			continue
		}
		if r, err := e.rowOf(ctx, f.t, tok); err != nil {
			return err
		} else if r.exists {
			return fmt.Errorf("the sweep left an expired row that was not extended (expiry %s, cutoff %s)", us(f.rows[tok].expiry), us(f.cutoff))
		}
		deleted++
	}
	if rep.Deleted != deleted {
		return fmt.Errorf("the sweep reported %d deleted, want %d (%d of %d sessions were extended during it)", rep.Deleted, deleted, len(extended), len(f.expired))
	}
	return nil
}
