package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// concurrencyMergeDisjointKeys: in merge mode, two requests that change
// different keys of one session both keep their changes, whether they
// interleave or race; the second store runs on a second pool when
// WithOpener is given.
func concurrencyMergeDisjointKeys(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	second, err := e.secondPool(ctx)
	if err != nil {
		return err
	}
	a, err := e.open(ctx, e.db, t)
	if err != nil {
		return err
	}
	b, err := e.open(ctx, second, t)
	if err != nil {
		return err
	}
	sess, err := a.saveNew(ctx, map[string]any{"base": 1})
	if err != nil {
		return err
	}
	tok := sess.Token()
	ra, err := a.Load(ctx, tok)
	if err != nil || ra.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", ra.IsNew(), err)
	}
	rb, err := b.Load(ctx, tok)
	if err != nil || rb.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", rb.IsNew(), err)
	}
	ra.Set("a", "from a")
	rb.Set("b", "from b")
	rb.Delete("base")
	if err := a.Save(ctx, ra); err != nil {
		return fmt.Errorf("first save: %w", err)
	}
	if err := b.Save(ctx, rb); err != nil {
		return fmt.Errorf("second, conflicting save: %w", err)
	}
	l, err := a.Load(ctx, tok)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if l.GetString("a") != "from a" || l.GetString("b") != "from b" || l.Has("base") {
		return fmt.Errorf("after two interleaved saves of different keys the session holds %v, want a and b without base", l.Keys())
	}
	if n := b.Stats().Conflicts; n < 1 {
		return errors.New("the second save did not see the conflict: the version check of Update is missing")
	}

	// Racing requests, each setting keys of its own.
	const workers, rounds = 4, 5
	stores := []*store{a, b}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := stores[w%len(stores)]
			for r := range rounds {
				s, err := st.Load(ctx, tok)
				if err != nil {
					errs <- err
					return
				}
				s.Set(fmt.Sprintf("w%d.r%d", w, r), r)
				if err := st.Save(ctx, s); errors.Is(err, session.ErrConflict) {
					continue // counted in ConflictFailures: the key is then rightly missing
				} else if err != nil {
					errs <- fmt.Errorf("racing save: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	l, err = a.Load(ctx, tok)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	missing := 0
	for w := range workers {
		for r := range rounds {
			if !l.Has(fmt.Sprintf("w%d.r%d", w, r)) {
				missing++
			}
		}
	}
	conflictFailures := a.Stats().ConflictFailures + b.Stats().ConflictFailures
	if uint64(missing) != conflictFailures {
		return fmt.Errorf("%d of %d keys set by racing saves were lost (%d saves gave up with ErrConflict)", missing, workers*rounds, conflictFailures)
	}
	return nil
}

// optimisticModes are the optimistic modes, with and without row
// deletion.
var optimisticModes = []struct {
	what       string
	mode       session.Mode
	deleteRows bool
}{
	{"merge mode", session.Merge, false},
	{"last-write-wins mode", session.LastWriteWins, false},
	{"merge mode deleting rows", session.Merge, true},
}

// concurrencySaveAfterDestroy: a save of a copy loaded before a concurrent
// Destroy gives ErrNotFound and does not bring the session back.
func concurrencySaveAfterDestroy(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	for _, m := range optimisticModes {
		clk := newClock(baseTime)
		st, err := e.open(ctx, e.db, t, session.WithMode(m.mode), session.WithDeleteRows(m.deleteRows), session.WithClock(clk.Now))
		if err != nil {
			return err
		}
		sess, err := st.saveNew(ctx, map[string]any{"user": "alice"})
		if err != nil {
			return err
		}
		tok := sess.Token()
		clk.Add(time.Second)
		logout, err := st.Load(ctx, tok)
		if err != nil {
			return err
		}
		late, err := st.Load(ctx, tok)
		if err != nil {
			return err
		}
		if err := st.Destroy(ctx, logout); err != nil {
			return fmt.Errorf("%s: destroy: %w", m.what, err)
		}
		late.Set("cart", 3)
		if err := st.Save(ctx, late); !errors.Is(err, session.ErrNotFound) {
			return fmt.Errorf("%s: a save after a concurrent Destroy gave %v, want session.ErrNotFound", m.what, err)
		}
		r, err := e.row(ctx, t, visit.HashToken(tok))
		if err != nil {
			return err
		}
		if r.exists && r.data != nil {
			return fmt.Errorf("%s: a save after a concurrent Destroy wrote data into the ended row", m.what)
		}
		if l, err := st.Load(ctx, tok); err != nil || !l.IsNew() {
			return fmt.Errorf("%s: a destroyed session loads after a concurrent save: new=%v err=%v", m.what, l.IsNew(), err)
		}
	}
	return nil
}

// concurrencySaveAfterRenew: a save of a copy loaded before a concurrent
// Renew gives ErrNotFound and writes nothing under the old or new key.
func concurrencySaveAfterRenew(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	for _, m := range optimisticModes[:2] {
		st, err := e.open(ctx, e.db, t, session.WithMode(m.mode))
		if err != nil {
			return err
		}
		sess, err := st.saveNew(ctx, map[string]any{"user": "alice"})
		if err != nil {
			return err
		}
		tok := sess.Token()
		login, err := st.Load(ctx, tok)
		if err != nil {
			return err
		}
		late, err := st.Load(ctx, tok)
		if err != nil {
			return err
		}
		if err := st.Renew(ctx, login); err != nil {
			return fmt.Errorf("%s: renew: %w", m.what, err)
		}
		late.Set("cart", 3)
		if err := st.Save(ctx, late); !errors.Is(err, session.ErrNotFound) {
			return fmt.Errorf("%s: a save after a concurrent Renew gave %v, want session.ErrNotFound", m.what, err)
		}
		if r, err := e.rowOf(ctx, t, tok); err != nil {
			return err
		} else if r.exists {
			return fmt.Errorf("%s: a save after a concurrent Renew wrote a row under the old key", m.what)
		}
		l, err := st.Load(ctx, login.Token())
		if err != nil || l.IsNew() {
			return fmt.Errorf("%s: the renewed session did not load: new=%v err=%v", m.what, l.IsNew(), err)
		}
		if l.Has("cart") || l.GetString("user") != "alice" {
			return fmt.Errorf("%s: the renewed session holds %v, want its data without the late save's change", m.what, l.Keys())
		}
	}
	return nil
}

// lockedCounterExact: in locked mode, read-modify-write increments from
// several goroutines serialize, and none is lost.
func lockedCounterExact(ctx context.Context, e *env) error {
	st, sess, err := e.caseSession(ctx, map[string]any{"n": 0}, session.WithMode(session.Locked), session.WithLockTimeout(30*time.Second))
	if err != nil {
		return err
	}
	tok := sess.Token()
	const workers, each = 4, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				l, err := st.Load(ctx, tok)
				if err != nil {
					errs <- fmt.Errorf("locked load: %w", err)
					return
				}
				if !l.Locked() {
					st.Release(ctx, l)
					errs <- errors.New("a locked-mode load of a live session does not hold the lock")
					return
				}
				l.Set("n", l.GetInt("n")+1)
				if err := st.Save(ctx, l); err != nil {
					errs <- fmt.Errorf("locked save: %w", err)
					return
				}
				if l.Locked() {
					errs <- errors.New("a locked-mode session still holds its lock after Save")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	l, err := st.Load(ctx, tok)
	if err != nil {
		return err
	}
	st.Release(ctx, l)
	if got := l.GetInt("n"); got != workers*each {
		return fmt.Errorf("%d locked increments from %d goroutines left the counter at %d: the row lock does not serialize them", workers*each, workers, got)
	}
	return nil
}

// lockedLockTimeout: in locked mode, a second Load while the row is locked
// gives ErrLockTimeout after the lock timeout; the holder can still save,
// and the lock can be taken again afterwards. The holder and the later
// loads use a store with a long lock timeout, so that only the contending
// load is bounded by the short one: a database may need a moment to
// abandon a wait that the short timeout cancelled.
func lockedLockTimeout(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	patient, err := e.open(ctx, e.db, t, session.WithMode(session.Locked), session.WithLockTimeout(30*time.Second))
	if err != nil {
		return err
	}
	impatient, err := e.open(ctx, e.db, t, session.WithMode(session.Locked), session.WithLockTimeout(250*time.Millisecond))
	if err != nil {
		return err
	}
	sess, err := patient.saveNew(ctx, map[string]any{"n": 0})
	if err != nil {
		return err
	}
	tok := sess.Token()
	holder, err := patient.Load(ctx, tok)
	if err != nil || !holder.Locked() {
		return fmt.Errorf("first locked load: locked=%v err=%v", holder.Locked(), err)
	}
	_, err = impatient.Load(ctx, tok)
	if !errors.Is(err, session.ErrLockTimeout) {
		patient.Release(ctx, holder)
		return fmt.Errorf("a second load while the row is locked gave %v, want session.ErrLockTimeout", err)
	}
	if n := impatient.Stats().LockTimeouts; n != 1 {
		patient.Release(ctx, holder)
		return fmt.Errorf("lock timeouts counted %d, want 1", n)
	}
	holder.Set("n", 1)
	if err := patient.Save(ctx, holder); err != nil {
		return fmt.Errorf("save by the lock holder after another load timed out: %w", err)
	}
	if holder.Locked() {
		return errors.New("the holder still holds the lock after Save")
	}
	again, err := patient.Load(ctx, tok)
	if err != nil || !again.Locked() {
		return fmt.Errorf("a locked load after the holder saved: locked=%v err=%v", again.Locked(), err)
	}
	patient.Release(ctx, again)
	if again.Locked() || again.GetInt("n") != 1 {
		return fmt.Errorf("after Release: locked=%v n=%d, want unlocked and 1", again.Locked(), again.GetInt("n"))
	}
	return nil
}
