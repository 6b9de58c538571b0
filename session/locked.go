package session

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"
)

// loadLocked opens the locking transaction and reads the row under its
// lock. A missing row releases the transaction at once: there is nothing
// to lock, and the new session is inserted by Save as in the other modes.
func (s *Store) loadLocked(ctx context.Context, sess *Session, tok, key string, now time.Time) error {
	var r row
	var found bool
	var h *heldLock
	err := s.retry(ctx, "load locked", func() error {
		var err error
		h, err = s.lockRow(ctx, key, now, &r, &found)
		return err
	})
	if err != nil {
		return fmt.Errorf("session: load: %w", err)
	}
	if !found {
		return nil
	}
	sess.lock = h
	return s.bind(sess, tok, key, r)
}

// lockRow begins the locking transaction and runs the locking load within
// the lock timeout. On return with found, the transaction stays open.
func (s *Store) lockRow(ctx context.Context, key string, now time.Time, r *row, found *bool) (h *heldLock, err error) {
	lockCtx, cancel := context.WithTimeout(ctx, s.cfg.lockTimeout)
	defer cancel()
	lk := s.d.Lock()
	h = &heldLock{}
	if lk.Begin == "" {
		// The transaction lives as long as the request's context; only the
		// wait for the lock is bounded by the lock timeout.
		if h.tx, err = s.db.BeginTx(ctx, nil); err != nil {
			return nil, s.lockErr(lockCtx, ctx, err)
		}
		*r, *found, err = s.readRow(lockCtx, h.tx, nil, &s.stmts.loadLocked, key, now)
	} else {
		if h.conn, err = s.db.Conn(ctx); err != nil {
			return nil, s.lockErr(lockCtx, ctx, err)
		}
		if _, err = h.conn.ExecContext(lockCtx, lk.Begin); err == nil {
			*r, *found, err = s.readRow(lockCtx, nil, h.conn, &s.stmts.loadLocked, key, now)
		} else {
			// BEGIN failed: no transaction is open on the connection.
			h.conn.Close()
			return nil, s.lockErr(lockCtx, ctx, err)
		}
	}
	if err != nil || !*found {
		s.rollback(ctx, h)
		if err != nil {
			return nil, s.lockErr(lockCtx, ctx, err)
		}
		return nil, nil
	}
	return h, nil
}

// lockErr turns an error seen while waiting for the lock into
// ErrLockTimeout when the lock timeout, not the caller, ended the wait.
func (s *Store) lockErr(lockCtx, ctx context.Context, err error) error {
	if lockCtx.Err() != nil && ctx.Err() == nil {
		s.counters.lockTimeouts.Add(1)
		return fmt.Errorf("%w (%v): %w", ErrLockTimeout, s.cfg.lockTimeout, err)
	}
	return err
}

// saveLocked writes the session's changes inside its locking transaction
// and commits, releasing the lock whatever happens.
func (s *Store) saveLocked(ctx context.Context, sess *Session, now time.Time) error {
	h := sess.lock
	var err error
	switch {
	case sess.changedLocked():
		var data []byte
		data, err = s.encode(sess.values)
		if err == nil {
			exp := s.expiryFor(now, sess.created)
			e := s.d.EncodeTime(exp)
			var n int64
			tx, q := h.tx, querier(nil)
			if tx == nil {
				q = h.conn
			}
			n, err = s.affected(ctx, "save", tx, q, &s.stmts.update, data, e, e, sess.key, sess.version, s.d.EncodeTime(now))
			switch {
			case err != nil:
			case n == 0:
				err = ErrNotFound
			default:
				sess.version++
				if exp.After(sess.expiry) {
					sess.expiry = exp
				}
			}
		}
	default:
		err = s.touch(ctx, sess, now, false)
	}
	if rerr := s.release(ctx, sess, err == nil); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("session: save: %w", err)
	}
	if sess.changedLocked() {
		s.counters.updates.Add(1)
		sess.resetChanges()
	}
	return nil
}

// release ends a locked session's transaction: commit when commit is
// true, otherwise roll back. The connection goes back to the pool.
func (s *Store) release(ctx context.Context, sess *Session, commit bool) error {
	h := sess.lock
	sess.lock = nil
	if h == nil {
		return nil
	}
	if !commit {
		s.rollback(ctx, h)
		return nil
	}
	if h.tx != nil {
		return h.tx.Commit()
	}
	defer h.conn.Close()
	_, err := h.conn.ExecContext(context.WithoutCancel(ctx), s.d.Lock().Commit)
	if err != nil {
		// Leave no transaction open on a connection that returns to the pool.
		_, _ = h.conn.ExecContext(context.WithoutCancel(ctx), s.d.Lock().Rollback)
	}
	return err
}

func (s *Store) rollback(ctx context.Context, h *heldLock) {
	if h.tx != nil {
		_ = h.tx.Rollback()
		return
	}
	_, err := h.conn.ExecContext(context.WithoutCancel(ctx), s.d.Lock().Rollback)
	if err != nil {
		// A connection whose transaction state is unknown must not be reused.
		_ = h.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	h.conn.Close()
}

// Release gives up a locked-mode session's row lock without writing,
// rolling back its transaction. It is a no-op for sessions that hold no
// lock, so it is safe to defer after Load in every mode.
func (s *Store) Release(ctx context.Context, sess *Session) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.lock != nil {
		_ = s.release(ctx, sess, false)
	}
}

// Locked reports whether the session holds its row lock.
func (sess *Session) Locked() bool {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.lock != nil
}
