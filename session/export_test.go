package session

import (
	"context"
	"errors"
	"time"
)

// The steps of a load, one by one, for BenchmarkLoadInPlace.

// LoadStepKey returns the stored key of tok.
func (s *Store) LoadStepKey(tok string) string { return s.cfg.keyMode.StoredKey(tok) }

// LoadStepNow reads the store's clock.
func (s *Store) LoadStepNow() time.Time { return s.now() }

// LoadStepRead reads the row of tok, stored under key, live at now.
func (s *Store) LoadStepRead(ctx context.Context, tok, key string, now time.Time) ([]byte, error) {
	r, _, _, found, err := s.readLive(ctx, tok, key, now)
	if err == nil && !found {
		err = errors.New("no live row")
	}
	return r.data, err
}

// LoadStepBind makes the Session of data, the stored data of tok, as a
// load binds it.
func (s *Store) LoadStepBind(tok, key string, data []byte) (*Session, error) {
	sess := &Session{store: s}
	return sess, s.bind(sess, tok, key, row{data: data})
}
