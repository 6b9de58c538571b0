package session

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/visitsession/visitsession/dialect"
)

// loadLocked opens the locking transaction and reads the row under its
// lock. A missing row releases the transaction at once: there is nothing
// to lock, and the new session is inserted by Save as in the other modes.
//
// A retryable failure to take the lock (a deadlock, a lock wait timeout, a
// busy database) is retried as statements are, see retry. The lock
// timeout bounds the whole wait for the lock, retries included. It starts
// once the first attempt holds a connection, so that a pool or a server
// slow to hand out connections (after cancelled requests made database/sql
// discard theirs, say) is not taken for contention on the session. The
// transaction itself lives as long as ctx.
func (s *Store) loadLocked(ctx context.Context, sess *Session, tok, key string, now time.Time) error {
	var lockCtx context.Context
	cancel := context.CancelFunc(func() {})
	defer func() { cancel() }()
	startWait := func() context.Context {
		if lockCtx == nil {
			lockCtx, cancel = context.WithTimeout(ctx, s.cfg.lockTimeout)
		}
		return lockCtx
	}
	backoff := retryBackoffFirst
	for attempt := 0; ; attempt++ {
		var r row
		h, atTok, atKey, found, err := s.lockRow(ctx, startWait, tok, key, now, &r)
		if err == nil {
			if !found {
				return nil
			}
			sess.lock = h
			return s.bind(sess, atTok, atKey, r)
		}
		waitCtx := lockCtx
		if waitCtx == nil {
			waitCtx = ctx
		}
		if attempt >= s.cfg.maxRetries || s.d.Classify(err) != dialect.Retryable || pause(waitCtx, jitter(backoff)) != nil {
			return fmt.Errorf("session: load: %w", s.lockErr(lockCtx, ctx, withContextErr(ctx, err)))
		}
		s.counters.retries.Add(1)
		if h := s.cfg.hooks.OnRetry; h != nil {
			h("load locked", err)
		}
		backoff = min(backoff*2, retryBackoffMax)
	}
}

// lockRow begins the locking transaction under ctx and runs the statement
// that takes the lock under the context that startWait returns once a
// connection is held: the dialect's TakeLock, followed by the locking load
// under ctx; or, on a dedicated connection, the statement that opens the
// transaction, followed by the locking load under the same context; or,
// with neither, the locking load itself. With found, the transaction
// stays open and is returned, holding the lock of the session reached from
// tok and key (a forward leads elsewhere, see readSession), whose token
// and key are returned; otherwise it has been ended and its connection
// given back.
func (s *Store) lockRow(ctx context.Context, startWait func() context.Context, tok, key string, now time.Time, r *row) (h *heldLock, atTok, atKey string, found bool, err error) {
	lk := s.d.Lock()
	h = &heldLock{ctx: ctx}
	if lk.Begin == "" {
		// database/sql rolls the transaction back if ctx ends before
		// Save, Renew, Destroy or Release.
		if h.tx, err = s.db.BeginTx(ctx, nil); err != nil {
			return nil, "", "", false, err
		}
		readCtx := startWait()
		if s.stmts.takeLock.query != "" {
			// The wait for the lock is this statement's; the locking
			// load then waits for nothing, and runs under the
			// transaction's own context.
			_, err = s.exec(readCtx, h.tx, nil, &s.stmts.takeLock)
			readCtx = ctx
		}
		if err == nil {
			*r, atTok, atKey, found, err = s.readSession(readCtx, h.tx, nil, &s.stmts.loadLocked, tok, key, now)
		}
	} else {
		if h.conn, err = s.db.Conn(ctx); err != nil {
			return nil, "", "", false, err
		}
		lockCtx := startWait()
		if _, err = h.conn.ExecContext(lockCtx, lk.Begin); err != nil {
			if lockCtx.Err() != nil {
				// A context ended during the BEGIN, which may have
				// succeeded all the same: some drivers (modernc.org/sqlite)
				// then report the context's error. Roll back, or discard
				// the connection.
				s.endConn(ctx, h.conn, false)
			} else {
				// BEGIN failed: no transaction is open on the connection.
				h.conn.Close()
			}
			return nil, "", "", false, err
		}
		*r, atTok, atKey, found, err = s.readSession(lockCtx, nil, h.conn, &s.stmts.loadLocked, tok, key, now)
	}
	if err == nil && found && !r.expiry.After(s.now()) {
		// The load's clock was read before the wait for the lock: the
		// session expired or was ended while this request waited.
		found = false
	}
	if err != nil || !found {
		if h.tx != nil {
			_ = h.tx.Rollback()
		} else {
			s.endConn(ctx, h.conn, false)
		}
		return nil, "", "", false, err
	}
	if h.conn != nil {
		s.guardConn(ctx, h)
	}
	return h, atTok, atKey, true, nil
}

// lockErr turns an error seen while waiting for the lock into
// ErrLockTimeout when the lock timeout, not the caller, ended the wait:
// the lock timeout expired, or the database itself gave up waiting (a lock
// wait timeout, a deadlock, a busy database) and the retries of the lock
// ran out of attempts or of time within the lock timeout. The driver's
// error stays wrapped. lockCtx is nil when no attempt got to wait.
func (s *Store) lockErr(lockCtx, ctx context.Context, err error) error {
	expired := lockCtx != nil && lockCtx.Err() != nil
	if ctx.Err() == nil && (expired || s.d.Classify(err) == dialect.Retryable) {
		s.counters.lockTimeouts.Add(1)
		return fmt.Errorf("%w (%v): %w", ErrLockTimeout, s.cfg.lockTimeout, err)
	}
	return err
}

// connGuard ends the manual transaction of a dedicated connection when the
// context of the load that opened it ends first, as database/sql does for
// a *sql.Tx: without it, a request that never reaches Save or Release would
// keep the connection, and on SQLite the database's write lock, forever.
type connGuard struct {
	mu    sync.Mutex // held by each statement run under the lock
	ended bool       // the guard rolled the transaction back
	err   error      // the context's error that made it do so
	stop  func() bool
	done  chan struct{} // closed once the guard has run
}

// guardConn arms the guard of h's connection.
func (s *Store) guardConn(ctx context.Context, h *heldLock) {
	g := &connGuard{done: make(chan struct{})}
	s.guards.Store(h, g)
	g.stop = context.AfterFunc(ctx, func() {
		defer close(g.done)
		g.mu.Lock()
		g.ended, g.err = true, ctx.Err()
		s.endConn(ctx, h.conn, false)
		g.mu.Unlock()
		s.guards.Delete(h)
	})
}

// errGuardEnded is the error of a statement or commit on a dedicated
// connection whose transaction the guard g (nil once it has forgotten the
// lock) rolled back.
func errGuardEnded(ctx context.Context, g *connGuard) error {
	err := fmt.Errorf("%w: rolled back when the context of the load ended", sql.ErrTxDone)
	if g != nil && g.err != nil {
		return fmt.Errorf("%w: %w", err, g.err)
	}
	return withContextErr(ctx, err)
}

// withContextErr adds ctx's error to err when ctx has ended: database/sql
// rolls back a transaction whose context ends, and a driver may report a
// cancelled statement as a broken connection, so that the error alone
// (sql.ErrTxDone, driver.ErrBadConn) does not say why; the caller should
// see it was the context.
func withContextErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); err != nil && cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", err, cerr)
	}
	return err
}

// inLock runs f with the executor of h's transaction. A transaction that
// was rolled back because the load's context ended gives an error wrapping
// sql.ErrTxDone, and ctx's error when ctx has ended too; on a dedicated
// connection the store's guard did the rollback, on a *sql.Tx database/sql.
func (s *Store) inLock(ctx context.Context, h *heldLock, f func(tx *sql.Tx, q querier) error) error {
	if h.tx != nil {
		return withContextErr(h.ctx, f(h.tx, nil))
	}
	v, ok := s.guards.Load(h)
	if !ok {
		return errGuardEnded(h.ctx, nil)
	}
	g := v.(*connGuard)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended {
		return errGuardEnded(h.ctx, g)
	}
	return f(nil, h.conn)
}

// saveLocked writes the session's changes inside its locking transaction
// and commits, releasing the lock whatever happens. The session's version
// and expiry change only once the commit succeeded.
func (s *Store) saveLocked(ctx context.Context, sess *Session, now time.Time) error {
	h := sess.lock
	changed := sess.changedLocked()
	oldExpiry := sess.expiry
	var exp time.Time
	var data []byte
	var patched int
	var err error
	if changed {
		if data, patched, err = s.encodeSession(sess); err == nil {
			exp = s.expiryFor(now, sess.created)
			e := s.d.EncodeTime(exp)
			err = s.inLock(ctx, h, func(tx *sql.Tx, q querier) error {
				n, err := s.affected(ctx, "save", tx, q, &s.stmts.update, data, e, e, sess.key, sess.version, s.d.EncodeTime(now))
				if err == nil && n == 0 {
					err = ErrNotFound
				}
				return err
			})
		}
	} else {
		err = s.touch(ctx, sess, now, false)
	}
	if rerr := s.release(ctx, sess, err == nil); err == nil {
		err = rerr
	}
	if err != nil {
		sess.expiry = oldExpiry
		if s.d.Classify(err) == dialect.Retryable {
			// The transaction lost to another (a deadlock victim, or a
			// write that failed a multi-primary cluster's certification):
			// it was rolled back and cannot be retried without the lock.
			err = fmt.Errorf("%w: %w", ErrLockLost, err)
		}
		return fmt.Errorf("session: save: %w", err)
	}
	if changed {
		sess.version++
		if exp.After(sess.expiry) {
			sess.expiry = exp
		}
		sess.wrote(data, patched)
		s.counters.updates.Add(1)
	}
	return nil
}

// release ends a locked session's transaction: commit when commit is
// true, otherwise roll back. The connection goes back to the pool, or is
// discarded when the state of its transaction is unknown. Releasing a
// transaction that was already rolled back because its context ended is
// an error wrapping sql.ErrTxDone when commit is true.
func (s *Store) release(ctx context.Context, sess *Session, commit bool) error {
	h := sess.lock
	sess.lock = nil
	if h == nil {
		return nil
	}
	return s.endLock(ctx, h, commit)
}

// endLock commits or rolls back the held transaction h.
func (s *Store) endLock(ctx context.Context, h *heldLock, commit bool) error {
	if h.tx != nil {
		if commit {
			return withContextErr(h.ctx, h.tx.Commit())
		}
		_ = h.tx.Rollback()
		return nil
	}
	v, ok := s.guards.LoadAndDelete(h)
	var g *connGuard
	if ok {
		g = v.(*connGuard)
		if g.stop() {
			return s.endConn(ctx, h.conn, commit)
		}
		<-g.done
	}
	// The load's context ended: the guard has rolled back.
	if commit {
		return errGuardEnded(h.ctx, g)
	}
	return nil
}

// endConn ends the manual transaction of conn, commit or rollback, with a
// context that outlives ctx's cancellation, and gives the connection back.
// A failed COMMIT is followed by a ROLLBACK; when that fails too, the
// connection is discarded rather than reused with a transaction open.
func (s *Store) endConn(ctx context.Context, conn *sql.Conn, commit bool) error {
	defer conn.Close()
	c := context.WithoutCancel(ctx)
	lk := s.d.Lock()
	var err error
	if commit {
		if _, err = conn.ExecContext(c, lk.Commit); err == nil {
			return nil
		}
	}
	if _, rerr := conn.ExecContext(c, lk.Rollback); rerr != nil && !errors.Is(rerr, sql.ErrConnDone) {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	return err
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
