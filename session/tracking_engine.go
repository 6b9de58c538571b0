package session

import (
	"context"
	"errors"
	"time"
)

// This file holds the middleware's only uses of the engine's unexported
// state: three small helpers the exported API does not offer yet (writing
// an empty visit, predicting a touch, and the store's clock).

// trackingInsert writes sess's row now, under a fresh token, although it
// holds no value: the visit row of TrackAll. A session that has a row,
// was ended in this request, or failed to load is left alone.
func (s *Store) trackingInsert(ctx context.Context, sess *Session) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.ensure()
	if sess.exists || sess.destroyed || (sess.loadErr != nil && !errors.Is(sess.loadErr, ErrCorrupt)) {
		return nil
	}
	return s.insert(ctx, sess, s.now())
}

// trackingTouchDue reports whether Save of the unchanged sess would write
// an expiry-only touch now, and the expiry it would write.
func (s *Store) trackingTouchDue(sess *Session) (bool, time.Time) {
	created, expiry := sess.Created(), sess.Expiry()
	if sess.IsNew() {
		return false, expiry
	}
	exp := s.expiryFor(s.now(), created)
	return exp.After(expiry) && exp.Sub(expiry) >= s.cfg.touchInterval, exp
}

// trackingNow returns the store's clock, for cookie lifetimes.
func (s *Store) trackingNow() time.Time { return s.now() }
