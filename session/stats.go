package session

import "sync/atomic"

// Stats is a snapshot of a Store's counters since Open.
type Stats struct {
	// Loads counts load statements run (including reloads after conflicts).
	Loads uint64
	// Misses counts loads that found no live session.
	Misses uint64
	// Inserts counts new sessions written.
	Inserts uint64
	// Updates counts data saves of existing sessions.
	Updates uint64
	// Touches counts expiry-only updates.
	Touches uint64
	// Renewals counts key rotations.
	Renewals uint64
	// Destroys counts sessions ended.
	Destroys uint64
	// Conflicts counts conditional writes (merge-mode saves, and renewals
	// outside Locked mode) that lost to a concurrent save of the same
	// session: each found the session still live at a newer version, and
	// re-applied its changes on it, or, at the last attempt, gave up. A
	// lost write that finds the session gone counts nothing here: it gives
	// ErrNotFound.
	Conflicts uint64
	// ConflictFailures counts saves and renewals that gave ErrConflict
	// after all their attempts. Each is also counted in Conflicts.
	ConflictFailures uint64
	// Retries counts statements, and locked-mode lock acquisitions, run
	// again after an error the dialect classifies as retryable
	// (serialization failure, deadlock, lock wait timeout, busy database,
	// a Galera certification failure). Statements inside a locked-mode
	// transaction are never retried.
	Retries uint64
	// KeyCollisions counts inserts retried under a new key.
	KeyCollisions uint64
	// DecodeErrors counts stored sessions that did not decode.
	DecodeErrors uint64
	// TooLarge counts saves refused with ErrTooLarge.
	TooLarge uint64
	// LockTimeouts counts locked-mode loads that gave ErrLockTimeout.
	LockTimeouts uint64
	// Forwards counts forward rows followed: loads and reloads by a token
	// that a renewal within the grace window (WithRenewGrace) replaced,
	// which reached the renewed session.
	Forwards uint64
}

// Hooks are optional functions called on store events. They run
// synchronously on the request's goroutine and must be fast.
type Hooks struct {
	// OnConflict is called when a merge-mode save lost to a concurrent save
	// and re-applies its changes; attempt counts from 1.
	OnConflict func(attempt int)
	// OnRetry is called before a statement is re-run after a retryable
	// error, after the backoff wait; op names the operation ("save",
	// "load", "load locked", ...).
	OnRetry func(op string, err error)
	// OnDecodeError is called when stored data does not decode.
	OnDecodeError func(err error)
}

type counters struct {
	loads, misses, inserts, updates, touches, renewals, destroys      atomic.Uint64
	conflicts, conflictFailures, retries, keyCollisions, decodeErrors atomic.Uint64
	tooLarge, lockTimeouts, forwards                                  atomic.Uint64
}

// Stats returns a snapshot of the store's counters.
func (s *Store) Stats() Stats {
	c := &s.counters
	return Stats{
		Loads: c.loads.Load(), Misses: c.misses.Load(), Inserts: c.inserts.Load(), Updates: c.updates.Load(),
		Touches: c.touches.Load(), Renewals: c.renewals.Load(), Destroys: c.destroys.Load(),
		Conflicts: c.conflicts.Load(), ConflictFailures: c.conflictFailures.Load(), Retries: c.retries.Load(),
		KeyCollisions: c.keyCollisions.Load(), DecodeErrors: c.decodeErrors.Load(), TooLarge: c.tooLarge.Load(),
		LockTimeouts: c.lockTimeouts.Load(), Forwards: c.forwards.Load(),
	}
}
