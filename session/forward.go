package session

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

// A renewal grace window (WithRenewGrace) leaves a forward row under the
// old key of a renewed session, written in the renewal's transaction: version dialect.ForwardVersion, expiry at
// most the window ahead, and data that seals the new token with the old
// one. A request still holding the old token reads the forward row, opens
// it with its token and goes on to the new row; nobody else can: the key
// stored under KeyHashed is a hash of the old token, and the seal's pad is
// another hash of it, so the table alone never yields the new token.

// forwardMagic starts the data of a forward row.
const forwardMagic = "vsfw\x01"

// forwardLen is the length of a forward row's data: the magic and the
// sealed raw bytes of the new token.
const forwardLen = len(forwardMagic) + tokenRawLen

// tokenRawLen is the number of random bytes of a token.
const tokenRawLen = visit.TokenLength * 6 / 8

// maxForwardHops bounds the forwards one load follows: a session renewed
// several times within the window forms a chain.
const maxForwardHops = 4

// forwardPad is the one-time pad that seals the token following oldTok.
func forwardPad(oldTok string) [sha256.Size]byte {
	return sha256.Sum256([]byte("visitsession forward\x00" + oldTok))
}

// sealForward returns the data of the forward row from oldTok to newTok.
func sealForward(oldTok, newTok string) []byte {
	out := make([]byte, forwardLen)
	copy(out, forwardMagic)
	raw := out[len(forwardMagic):]
	if n, err := base64.RawURLEncoding.Decode(raw, []byte(newTok)); err != nil || n != tokenRawLen {
		panic("session: sealForward: malformed token") // tokens come from visit.NewToken
	}
	pad := forwardPad(oldTok)
	subtle.XORBytes(raw, raw, pad[:tokenRawLen])
	return out
}

// openForward returns the token that the forward row data, written for
// oldTok, leads to; ok is false for data that is no forward.
func openForward(oldTok string, data []byte) (newTok string, ok bool) {
	if len(data) != forwardLen || string(data[:len(forwardMagic)]) != forwardMagic {
		return "", false
	}
	var raw [tokenRawLen]byte
	pad := forwardPad(oldTok)
	subtle.XORBytes(raw[:], data[len(forwardMagic):], pad[:tokenRawLen])
	return base64.RawURLEncoding.EncodeToString(raw[:]), true
}

// readSession runs a load statement for the session of tok, whose stored
// key is key, following forward rows: it returns the row of the live
// session reached and that session's token and key. found is false when
// there is none.
func (s *Store) readSession(ctx context.Context, tx *sql.Tx, q querier, st *stmt, tok, key string, now time.Time) (r row, atTok, atKey string, found bool, err error) {
	for hop := 0; ; hop++ {
		r, found, err = s.readRow(ctx, tx, q, st, key, now)
		if err != nil || !found || r.version != dialect.ForwardVersion {
			return r, tok, key, found, err
		}
		next, ok := openForward(tok, r.data)
		if !ok || hop == maxForwardHops {
			// A forward row that does not open, or a chain longer than
			// renewals within one window make: no session here.
			s.counters.misses.Add(1)
			return row{}, tok, key, false, nil
		}
		s.counters.forwards.Add(1)
		tok, key = next, s.cfg.keyMode.StoredKey(next)
	}
}

// readLive is readSession outside a transaction, under readContext(ctx):
// the load, the merge's reload and the read of a renewed session's
// forward.
func (s *Store) readLive(ctx context.Context, tok, key string, now time.Time) (r row, atTok, atKey string, found bool, err error) {
	rctx, err := s.readContext(ctx)
	if err != nil {
		return row{}, tok, key, false, err
	}
	return s.readSession(rctx, nil, nil, &s.stmts.load, tok, key, now)
}

// renewedFrom is the session a renewal moved: its token, key and expiry
// just before.
type renewedFrom struct {
	token, key string
	expiry     time.Time
}

// writeForward writes, in the renewal's transaction, the forward row from
// the session's old token and key to its new token, for the grace window
// and no longer than the old session would have lived.
func (s *Store) writeForward(ctx context.Context, tx *sql.Tx, q querier, sess *Session, from renewedFrom, now time.Time) error {
	end := now.Add(s.cfg.renewGrace)
	if from.expiry.Before(end) {
		end = from.expiry
	}
	created := sess.created
	if created.After(now) {
		created = now
	}
	_, err := s.affected(ctx, "forward", tx, q, &s.stmts.forward,
		from.key, sealForward(from.token, sess.token), s.d.EncodeTime(created), s.d.EncodeTime(end))
	if err != nil {
		return fmt.Errorf("session: renew: forward: %w", err)
	}
	return nil
}
