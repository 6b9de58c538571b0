package session

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

// maxKeyAttempts bounds how many fresh keys an insert or renewal tries
// when the key collides with an existing row (a collision of 160-bit keys
// means a broken random source, not bad luck).
const maxKeyAttempts = 4

// endedMargin is how far before the destroying request's clock Destroy
// puts the expiry of an ended visit. A save or touch of another request
// treats a row as live while its expiry is after that request's own clock,
// so an ended row whose expiry were exactly "now" would come back for a
// concurrent request that read its clock a moment earlier, or on a server
// whose clock lags. The margin closes that window for lags shorter than it.
const endedMargin = time.Minute

// New returns an empty session with no stored row. It is written, under a
// fresh token, by the first Save after a value is set.
func (s *Store) New() *Session { return &Session{store: s} }

// Load returns the session whose cookie token is token, in one round trip.
//
// A token that is malformed (wrong length or alphabet; no query is run),
// unknown, or whose session has expired, whether swept or not, gives a new
// empty session and a nil error: an incoming token is never adopted, and
// the session gets a fresh token when first written.
//
// In Locked mode the row stays locked until Save, Renew, Destroy or
// Release; Load then gives ErrLockTimeout when the lock cannot be taken in
// time.
//
// A ctx already done gives its error. Where the dialect lets reads run
// detached (dialect.Dialect.DetachReads: SQLite in WAL mode) the read then
// runs to its end once begun, so that nothing has to watch ctx; elsewhere
// cancelling ctx cuts the read short.
//
// Stored data that does not decode gives an error wrapping ErrCorrupt
// together with a usable empty session bound to the row, so that a Save
// replaces the bad data. Other errors: ErrClosed, ErrLockTimeout, and
// driver errors, wrapped.
func (s *Store) Load(ctx context.Context, token string) (*Session, error) {
	sess := &Session{store: s}
	err := s.load(ctx, sess, token)
	return sess, err
}

// Lazy returns a session for token that is loaded, as by Load, on its
// first use, under ctx; a session never used costs no query. The load's
// error is reported by Session.Err and by Save.
func (s *Store) Lazy(ctx context.Context, token string) *Session {
	sess := new(Session)
	s.initLazy(sess, ctx, token)
	return sess
}

// initLazy makes the zero Session sess a lazy session of this store for
// token, as Lazy returns.
func (s *Store) initLazy(sess *Session, ctx context.Context, token string) {
	sess.store, sess.ctx, sess.lazy, sess.token = s, ctx, true, token
}

// row is one stored session as read.
type row struct {
	data    []byte
	created time.Time
	expiry  time.Time
	version int64
}

// scanBuf is what a load scans into. Loads take one from scanBufs, so
// that the scan allocates nothing beyond what database/sql and the driver
// do: the destinations, the boxes of the scanned values and the argument
// lists would otherwise be allocated by each load. Every destination is
// one that database/sql fills without reflection (an any, or a Scanner).
type scanBuf struct {
	data            scannedData
	created, expiry scannedTime
	version         any
	dest            [4]any
	args            [2]any
}

var scanBufs = sync.Pool{New: func() any {
	b := new(scanBuf)
	b.dest = [4]any{&b.data, &b.created, &b.expiry, &b.version}
	return b
}}

// scannedData is the destination of the data column: a Scanner, so that
// database/sql hands it the driver's value as it is. It copies a []byte
// unless keep is set, which the store sets only for a driver that gives
// each value a slice of its own (dialect.FreshBytes); database/sql would
// otherwise copy it once more.
type scannedData struct {
	b    []byte
	keep bool
}

// Scan implements sql.Scanner.
func (d *scannedData) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		d.b = nil
	case []byte:
		if d.keep {
			d.b = v
		} else {
			d.b = bytes.Clone(v)
		}
	case string:
		d.b = []byte(v)
	default:
		return fmt.Errorf("%w: data: unsupported type %T", ErrCorrupt, src)
	}
	return nil
}

// scannedTime is the destination of a time column: a Scanner, so that the
// dialect decodes the driver's value where it lies (database/sql would
// copy a []byte, as MySQL's text times are, into an any first). A value
// that does not decode is kept as err, for the load to report.
type scannedTime struct {
	d   dialect.Dialect
	t   time.Time
	err error
}

// Scan implements sql.Scanner.
func (st *scannedTime) Scan(src any) error {
	st.t, st.err = st.d.DecodeTime(src)
	return nil
}

// scannedInt64 converts a scanned integer column: drivers give int64, and
// text protocols the digits.
func scannedInt64(src any) (int64, error) {
	switch v := src.(type) {
	case int64:
		return v, nil
	case int32:
		return int64(v), nil
	case uint64:
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("%d out of range", v)
		}
		return int64(v), nil
	case []byte:
		return strconv.ParseInt(string(v), 10, 64)
	case string:
		return strconv.ParseInt(v, 10, 64)
	}
	return 0, fmt.Errorf("unsupported value %T(%v)", src, src)
}

// readRow runs a load statement for key. found is false when no live row
// matches.
func (s *Store) readRow(ctx context.Context, tx *sql.Tx, q querier, st *stmt, key string, now time.Time) (r row, found bool, err error) {
	b := scanBufs.Get().(*scanBuf)
	b.data.keep = s.freshBytes
	b.created.d, b.expiry.d = s.d, s.d
	b.args[0], b.args[1] = key, s.d.EncodeTime(now)
	err = s.scanRow(ctx, tx, q, st, b.args[:], b.dest[:])
	r.data = b.data.b
	created, expiry, version := b.created, b.expiry, b.version
	b.data.b, b.created, b.expiry, b.version, b.args = nil, scannedTime{}, scannedTime{}, nil, [2]any{}
	scanBufs.Put(b)
	s.counters.loads.Add(1)
	if errors.Is(err, sql.ErrNoRows) {
		s.counters.misses.Add(1)
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	if r.created, err = created.t, created.err; err != nil {
		return r, false, fmt.Errorf("%w: created: %w", ErrCorrupt, err)
	}
	if r.expiry, err = expiry.t, expiry.err; err != nil {
		return r, false, fmt.Errorf("%w: expiry: %w", ErrCorrupt, err)
	}
	if r.version, err = scannedInt64(version); err != nil {
		return r, false, fmt.Errorf("%w: version: %w", ErrCorrupt, err)
	}
	return r, true, nil
}

// decode turns stored data into values. Empty data is an empty session.
func (s *Store) decode(data []byte) (map[string]any, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if len(data) > s.cfg.maxSize {
		return nil, s.decodeFailed(fmt.Errorf("%w: %d bytes stored, more than the maximum %d", ErrCorrupt, len(data), s.cfg.maxSize))
	}
	v, err := s.cfg.codec.Decode(data)
	if err != nil {
		return nil, s.decodeFailed(err)
	}
	return v, nil
}

func (s *Store) decodeFailed(err error) error {
	s.counters.decodeErrors.Add(1)
	if h := s.cfg.hooks.OnDecodeError; h != nil {
		h(err)
	}
	if l := s.cfg.logger; l != nil {
		l.Warn("session: stored session data does not decode", "table", s.cfg.table.Name, "error", err)
	}
	return err
}

// encodeSession returns the data to store for sess: the data it was
// loaded with while that stands for its values unchanged, or that data
// patched with the session's changes, or else its values encoded whole.
// patched is the number of values in data when the codec patched it from
// data that stands for the values (see Session.wrote), and -1 otherwise.
func (s *Store) encodeSession(sess *Session) (data []byte, patched int, err error) {
	lazy := sess.rawStands()
	if lazy && len(sess.changes) == 0 {
		return sess.raw, -1, nil
	}
	if sess.raw != nil && s.patcher != nil && !sess.cleared && len(sess.changes) > 0 {
		// A decoded session knows how many values the data must hold;
		// one that reads them from raw has them checked by the codec.
		if p, n, ok := s.patcher.Patch(sess.raw, sess.changes, sess.values); ok && (lazy || n == len(sess.values)) {
			if n == 0 {
				return nil, -1, nil
			}
			if !lazy {
				n = -1
			}
			data, err = s.fits(p)
			return data, n, err
		}
	}
	sess.decodeRaw()
	data, err = s.encode(sess.values)
	return data, -1, err
}

// encode turns values into stored data: nil for an empty session,
// ErrTooLarge past the size limit.
func (s *Store) encode(values map[string]any) ([]byte, error) {
	if len(values) == 0 {
		return nil, nil
	}
	data, err := s.cfg.codec.Encode(values)
	if err != nil {
		return nil, err
	}
	return s.fits(data)
}

// fits returns data, or ErrTooLarge past the size limit.
func (s *Store) fits(data []byte) ([]byte, error) {
	if len(data) > s.cfg.maxSize {
		s.counters.tooLarge.Add(1)
		return nil, fmt.Errorf("%w: %d bytes, maximum %d", ErrTooLarge, len(data), s.cfg.maxSize)
	}
	return data, nil
}

func (s *Store) load(ctx context.Context, sess *Session, token string) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	tok, err := visit.ParseToken(token)
	if err != nil {
		return nil
	}
	key := s.cfg.keyMode.StoredKey(tok)
	now := s.now()
	if s.cfg.mode == Locked {
		return s.loadLocked(ctx, sess, tok, key, now)
	}
	var r row
	var found bool
	err = s.retry(ctx, "load", func() (err error) {
		r, tok, key, found, err = s.readLive(ctx, tok, key, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("session: load: %w", err)
	}
	if !found {
		return nil
	}
	return s.bind(sess, tok, key, r)
}

// bind attaches a loaded row to sess. On a decode error the session stays
// bound to the row with no values.
func (s *Store) bind(sess *Session, tok, key string, r row) error {
	sess.token, sess.key, sess.exists = tok, key, true
	sess.created, sess.expiry, sess.version = r.created, r.expiry, r.version
	sess.dropRaw()
	if s.indexed != nil && len(r.data) > 0 && len(r.data) <= s.cfg.maxSize {
		// Data the codec vouches for decodes: its values are decoded when
		// read. Other data is decoded now, so that an error is reported
		// here.
		if n, ok := s.indexed.Check(r.data, sess.rawIndex[:]); ok {
			sess.values, sess.raw, sess.rawLen = nil, r.data, int32(n)
			return nil
		}
	}
	values, err := s.decode(r.data)
	sess.values = values
	if err != nil {
		return fmt.Errorf("session: load: %w", err)
	}
	return nil
}

// enter begins an operation on sess, with sess.mu held: it checks the
// store is open (rolling back a held lock if not), runs a pending lazy
// load, and, when loaded is true, refuses a session whose load failed for
// any reason but undecodable data, which a write may replace.
func (s *Store) enter(ctx context.Context, sess *Session, op string, loaded bool) error {
	if err := s.checkOpenFor(ctx, sess); err != nil {
		return err
	}
	sess.ensure()
	if loaded && sess.loadErr != nil && !errors.Is(sess.loadErr, ErrCorrupt) {
		return fmt.Errorf("session: %s: not loaded: %w", op, sess.loadErr)
	}
	return nil
}

// Save writes what this request changed.
//
// A new session is written only once it holds a value: one INSERT under a
// fresh token, retried under another token if the key collides (never an
// upsert that could take over another row). An existing session with
// changes is one conditional UPDATE in Merge mode; when a concurrent save
// won, Save reloads, re-applies this request's own sets and deletes on the
// fresh data and tries again, up to the configured attempts, then gives
// ErrConflict. A session without changes writes no data: at most an
// expiry-only touch, when the touch interval has passed.
//
// Errors: ErrTooLarge (nothing written), ErrNotFound (the session was
// ended or renewed elsewhere, or expired; nothing written), ErrConflict,
// ErrClosed, ErrLockLost (Locked mode), the lazy load's error, and driver
// errors, wrapped. In Locked mode Save commits and releases the row lock,
// also on error.
//
// A save that fails because ctx ended may still have been committed: the
// database finishes a statement its client stopped waiting for. The row
// then holds the new data and version as a whole, never a mix.
func (s *Store) Save(ctx context.Context, sess *Session) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if err := s.enter(ctx, sess, "save", true); err != nil {
		return err
	}
	now := s.now()
	if sess.lock != nil {
		return s.saveLocked(ctx, sess, now)
	}
	if !sess.exists {
		if len(sess.values) == 0 {
			sess.resetChanges()
			return nil
		}
		return s.insert(ctx, sess, now)
	}
	if !sess.changedLocked() {
		return s.touch(ctx, sess, now, false)
	}
	if s.cfg.mode == LastWriteWins {
		return s.saveAny(ctx, sess, now)
	}
	return s.saveMerge(ctx, sess, now)
}

func (sess *Session) resetChanges() {
	clear(sess.changes)
	sess.cleared = false
}

// rebase replaces the session's values by fresh ones, decoded from data,
// with this request's own changes applied on top; data becomes the base of
// the next save.
func (sess *Session) rebase(fresh map[string]any, data []byte) {
	sess.dropRaw()
	if sess.cleared || fresh == nil {
		fresh = make(map[string]any, len(sess.changes))
	} else if len(data) > 0 {
		sess.raw, sess.rawDecoded = data, true
	}
	sess.values = sess.applyChanges(fresh)
}

func (s *Store) insert(ctx context.Context, sess *Session, now time.Time) error {
	data, _, err := s.encodeSession(sess)
	if err != nil {
		return fmt.Errorf("session: save: %w", err)
	}
	exp := s.expiryFor(now, now)
	for range maxKeyAttempts {
		tok := visit.NewToken()
		key := s.cfg.keyMode.StoredKey(tok)
		err = s.retry(ctx, "insert", func() error {
			_, err := s.exec(ctx, nil, nil, &s.stmts.insert, key, data, s.d.EncodeTime(now), s.d.EncodeTime(exp))
			return err
		})
		if err == nil {
			sess.token, sess.key, sess.exists = tok, key, true
			sess.created, sess.expiry, sess.version = now, exp, 1
			sess.wrote(data, -1)
			s.counters.inserts.Add(1)
			return nil
		}
		if s.d.Classify(err) != dialect.Duplicate {
			return fmt.Errorf("session: save: insert: %w", err)
		}
		s.counters.keyCollisions.Add(1)
	}
	return fmt.Errorf("session: save: insert: %d key collisions: %w", maxKeyAttempts, err)
}

// affected runs st and returns the number of rows it changed. On the pool
// (tx and q nil) a retryable error runs it again, see retry; in a held
// transaction it runs once, since the failed statement has aborted (on
// PostgreSQL) or rolled back (a MySQL deadlock) the transaction, and running
// it again would act outside the lock.
func (s *Store) affected(ctx context.Context, op string, tx *sql.Tx, q querier, st *stmt, args ...any) (int64, error) {
	var n int64
	run := func() error {
		res, err := s.exec(ctx, tx, q, st, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	}
	if tx != nil || q != nil {
		return n, run()
	}
	return n, s.retry(ctx, op, run)
}

func (s *Store) saveMerge(ctx context.Context, sess *Session, now time.Time) error {
	w := mergeWait{read: time.Now()}
	for attempt := 1; ; attempt++ {
		data, patched, err := s.encodeSession(sess)
		if err != nil {
			return fmt.Errorf("session: save: %w", err)
		}
		exp := s.expiryFor(now, sess.created)
		e := s.d.EncodeTime(exp)
		rows, err := s.affected(ctx, "save", nil, nil, &s.stmts.update, data, e, e, sess.key, sess.version, s.d.EncodeTime(now))
		if err != nil {
			return fmt.Errorf("session: save: %w", err)
		}
		if rows > 0 {
			sess.version++
			if exp.After(sess.expiry) {
				sess.expiry = exp
			}
			sess.wrote(data, patched)
			s.counters.updates.Add(1)
			return nil
		}
		if err := s.rebaseFromStore(ctx, sess, attempt, &w); err != nil {
			return fmt.Errorf("session: save: %w", err)
		}
		now = s.now()
	}
}

// mergeWait is what a merge-mode save measures of its concurrent writers
// between attempts.
type mergeWait struct {
	read time.Time     // when the version of the last attempt was read
	slot time.Duration // how long the last attempt took, see rebaseFromStore
}

// rebaseFromStore handles a lost conditional write. Unless this was the
// last attempt, it first waits a jittered moment (see mergeBackoff) within
// ctx's deadline, so that the reload and the next write follow each other
// closely and the fresh version is still current when the write arrives.
// Then it reloads the row, and gives ErrNotFound if it is gone or
// ErrConflict after the last attempt; otherwise it rebases the session's
// changes on the fresh row for the caller to try again at once.
//
// The wait is measured in slots: how long the lost attempt took, from its
// read of the version (the load, or the reload before it) to the answer to
// its write. That is the window in which another write makes an attempt
// fail, and it grows, as it should, when writers queue for the row.
//
// The reload reads the clock afresh: the lost write may have been a
// Destroy that ended the row after this save read the clock, and the row
// must not look live to the save that lost to it.
func (s *Store) rebaseFromStore(ctx context.Context, sess *Session, attempt int, w *mergeWait) error {
	w.slot = time.Since(w.read)
	if attempt < s.cfg.maxAttempts {
		if err := pauseWithin(ctx, mergeBackoff(attempt, w.slot)); err != nil {
			return err
		}
	}
	start := time.Now()
	var r row
	var found bool
	now := s.now()
	tok, key := sess.token, sess.key
	err := s.retry(ctx, "reload", func() (err error) {
		r, tok, key, found, err = s.readLive(ctx, sess.token, sess.key, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if !found {
		return ErrNotFound
	}
	// A renewal within its grace window moved the session: the changes
	// go to the new row, and the request's response sends the new token.
	sess.token, sess.key = tok, key
	w.read = start
	s.counters.conflicts.Add(1)
	if h := s.cfg.hooks.OnConflict; h != nil {
		h(attempt)
	}
	if attempt >= s.cfg.maxAttempts {
		s.counters.conflictFailures.Add(1)
		if l := s.cfg.logger; l != nil {
			l.Warn("session: save gave up after conflicting concurrent saves", "table", s.cfg.table.Name, "attempts", attempt)
		}
		return ErrConflict
	}
	fresh, derr := s.decode(r.data)
	if derr != nil {
		fresh = nil // the request's changes replace undecodable data
	}
	sess.rebase(fresh, r.data)
	sess.version, sess.expiry = r.version, r.expiry
	return nil
}

func (s *Store) saveAny(ctx context.Context, sess *Session, now time.Time) error {
	data, patched, err := s.encodeSession(sess)
	if err != nil {
		return fmt.Errorf("session: save: %w", err)
	}
	exp := s.expiryFor(now, sess.created)
	e := s.d.EncodeTime(exp)
	for hop := 0; ; hop++ {
		rows, err := s.affected(ctx, "save", nil, nil, &s.stmts.updateAny, data, e, e, sess.key, s.d.EncodeTime(now))
		if err != nil {
			return fmt.Errorf("session: save: %w", err)
		}
		if rows > 0 {
			break
		}
		// The session is gone, or was renewed: within a grace window, the
		// save goes to the renewed session.
		if hop == maxForwardHops {
			return fmt.Errorf("session: save: %w", ErrNotFound)
		}
		r, tok, key, moved, err := s.movedTo(ctx, sess.token, sess.key)
		if err != nil {
			return fmt.Errorf("session: save: reload: %w", err)
		}
		if !moved {
			return fmt.Errorf("session: save: %w", ErrNotFound)
		}
		sess.token, sess.key, sess.version, sess.expiry = tok, key, r.version, r.expiry
	}
	sess.version++
	if exp.After(sess.expiry) {
		sess.expiry = exp
	}
	sess.wrote(data, patched)
	s.counters.updates.Add(1)
	return nil
}

// touch moves expiry forward without writing data: when force is false,
// only if it would move by at least the touch interval.
func (s *Store) touch(ctx context.Context, sess *Session, now time.Time, force bool) error {
	if !sess.exists {
		return nil
	}
	exp := s.expiryFor(now, sess.created)
	if !exp.After(sess.expiry) || (!force && exp.Sub(sess.expiry) < s.cfg.touchInterval) {
		return nil
	}
	e := s.d.EncodeTime(exp)
	run := func(tx *sql.Tx, q querier) error {
		_, err := s.affected(ctx, "touch", tx, q, &s.stmts.touch, e, sess.key, e, s.d.EncodeTime(now))
		return err
	}
	var err error
	if sess.lock != nil {
		err = s.inLock(ctx, sess.lock, run)
	} else {
		err = run(nil, nil)
	}
	if err != nil {
		return fmt.Errorf("session: touch: %w", err)
	}
	sess.expiry = exp
	s.counters.touches.Add(1)
	return nil
}

// Touch moves the session's expiry forward to now plus the idle timeout
// (capped by the absolute timeout), writing no data, whatever the touch
// interval. A session that is new, or whose expiry is already that far,
// costs no statement. In Locked mode the touch runs in the session's
// transaction, which stays open. Errors: ErrClosed and driver errors,
// wrapped.
func (s *Store) Touch(ctx context.Context, sess *Session) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if err := s.enter(ctx, sess, "touch", false); err != nil {
		return err
	}
	return s.touch(ctx, sess, s.now(), true)
}

// Renew gives the session a new token and key, keeping its data (and
// writing this request's pending changes with it) in one conditional
// UPDATE; the old token stops working at once, or, with a grace window
// (WithRenewGrace), once the window has passed: until then a request
// holding it reaches the renewed session, through a forward row written in
// the renewal's transaction. Call Renew when privileges change, at login
// and logout, against session fixation. A session not yet
// written only forgets its token: it is written under a fresh one.
//
// In Locked mode Renew runs in the session's transaction, then commits and
// releases the row lock, also on error; the session keeps its old token
// when the commit fails. Errors: ErrNotFound (ended, renewed or expired
// elsewhere), ErrConflict, ErrTooLarge, ErrClosed, driver errors, wrapped.
func (s *Store) Renew(ctx context.Context, sess *Session) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if err := s.enter(ctx, sess, "renew", true); err != nil {
		return err
	}
	sess.renewed = true
	if !sess.exists {
		sess.token = ""
		return nil
	}
	now := s.now()
	if sess.lock == nil {
		var err error
		if s.cfg.renewGrace > 0 {
			err = s.renewForwarding(ctx, sess, now)
		} else {
			_, err = s.renew(ctx, sess, now, nil, nil)
		}
		if err != nil {
			return err
		}
		s.counters.renewals.Add(1)
		return nil
	}
	saved := sess.snapshot()
	err := s.inLock(ctx, sess.lock, func(tx *sql.Tx, q querier) error {
		from, err := s.renew(ctx, sess, now, tx, q)
		if err == nil && s.cfg.renewGrace > 0 {
			err = s.writeForward(ctx, tx, q, sess, from, now)
		}
		return err
	})
	rerr := s.release(ctx, sess, err == nil)
	if err == nil && rerr != nil {
		err = fmt.Errorf("session: renew: %w", rerr)
	}
	if err != nil {
		// Nothing was committed: the session keeps its old key and its
		// pending changes.
		sess.restore(saved)
		return err
	}
	s.counters.renewals.Add(1)
	return nil
}

// renewState is what a renewal changes in a Session, kept to undo it
// when the renewal is not committed.
type renewState struct {
	token, key string
	version    int64
	expiry     time.Time
	changes    map[string]bool
	cleared    bool
}

func (sess *Session) snapshot() renewState {
	return renewState{token: sess.token, key: sess.key, version: sess.version, expiry: sess.expiry,
		changes: maps.Clone(sess.changes), cleared: sess.cleared}
}

func (sess *Session) restore(st renewState) {
	sess.token, sess.key, sess.version, sess.expiry = st.token, st.key, st.version, st.expiry
	sess.changes, sess.cleared = maps.Clone(st.changes), st.cleared
}

// renewForwarding renews a session outside Locked mode when the store has
// a grace window: each attempt is one transaction holding the key change
// and the forward row, so that a request holding the old token never
// finds the session missing in between. An attempt whose conditional
// UPDATE finds no row at the session's version reloads, as Save does, and
// tries again; one that fails with a retryable error runs again whole.
func (s *Store) renewForwarding(ctx context.Context, sess *Session, now time.Time) error {
	w := mergeWait{read: time.Now()}
	for attempt := 1; ; attempt++ {
		saved := sess.snapshot()
		err := s.retry(ctx, "renew", func() error {
			sess.restore(saved)
			tx, err := s.db.BeginTx(ctx, nil)
			if err != nil {
				return fmt.Errorf("session: renew: %w", err)
			}
			from, err := s.renew(ctx, sess, now, tx, nil)
			if err == nil {
				err = s.writeForward(ctx, tx, nil, sess, from, now)
			}
			if err != nil {
				_ = tx.Rollback()
				return err
			}
			if err := tx.Commit(); err != nil {
				return fmt.Errorf("session: renew: %w", err)
			}
			return nil
		})
		if err == nil {
			return nil
		}
		sess.restore(saved)
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		// A concurrent save won, or the session is gone.
		if err := s.rebaseFromStore(ctx, sess, attempt, &w); err != nil {
			return fmt.Errorf("session: renew: %w", err)
		}
		now = s.now()
	}
}

func (s *Store) renew(ctx context.Context, sess *Session, now time.Time, tx *sql.Tx, q querier) (renewedFrom, error) {
	collisions := 0
	w := mergeWait{read: time.Now()}
	for attempt := 1; ; attempt++ {
		data, patched, err := s.encodeSession(sess)
		if err != nil {
			return renewedFrom{}, fmt.Errorf("session: renew: %w", err)
		}
		exp := s.expiryFor(now, sess.created)
		e := s.d.EncodeTime(exp)
		tok := visit.NewToken()
		key := s.cfg.keyMode.StoredKey(tok)
		n, err := s.affected(ctx, "renew", tx, q, &s.stmts.renew, key, data, e, e, sess.key, sess.version, s.d.EncodeTime(now))
		// A duplicate key aborts a PostgreSQL transaction: only a renewal
		// on the pool tries another key.
		if s.d.Classify(err) == dialect.Duplicate && collisions < maxKeyAttempts && tx == nil && q == nil {
			collisions++
			s.counters.keyCollisions.Add(1)
			continue
		}
		if err != nil {
			return renewedFrom{}, fmt.Errorf("session: renew: %w", err)
		}
		if n > 0 {
			from := renewedFrom{token: sess.token, key: sess.key, expiry: sess.expiry}
			sess.token, sess.key = tok, key
			sess.version++
			if exp.After(sess.expiry) {
				sess.expiry = exp
			}
			sess.wrote(data, patched)
			return from, nil
		}
		if tx != nil || q != nil {
			// The row is locked by this session: it can only be gone.
			return renewedFrom{}, fmt.Errorf("session: renew: %w", ErrNotFound)
		}
		if err := s.rebaseFromStore(ctx, sess, attempt, &w); err != nil {
			return renewedFrom{}, fmt.Errorf("session: renew: %w", err)
		}
		now = s.now()
	}
}

// Destroy ends the session (call it at logout). By default the visit row
// stays as history with its data cleared and its expiry set a minute
// before now (or to its creation, if that is later), so that no concurrent
// save or touch, even from a server whose clock lags by less than that,
// can bring the session back; WithDeleteRows removes the row instead. The
// Session becomes new and empty: values set afterwards are saved under a
// fresh token. Destroying a session that is new or already gone is not an
// error. In Locked mode Destroy runs in the session's transaction, then
// commits and releases the row lock, also on error. Errors: ErrClosed,
// driver errors, wrapped.
func (s *Store) Destroy(ctx context.Context, sess *Session) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if err := s.enter(ctx, sess, "destroy", false); err != nil {
		return err
	}
	var err error
	if sess.exists {
		run := func(tx *sql.Tx, q querier, key string, created time.Time) (int64, error) {
			if s.cfg.deleteRows {
				return s.affected(ctx, "destroy", tx, q, &s.stmts.del, key)
			}
			now := s.now()
			end := now.Add(-endedMargin)
			if created.After(end) {
				end = created
				if end.After(now) {
					end = now
				}
			}
			return s.affected(ctx, "destroy", tx, q, &s.stmts.end, s.d.EncodeTime(end), key, s.d.EncodeTime(now))
		}
		if sess.lock != nil {
			err = s.inLock(ctx, sess.lock, func(tx *sql.Tx, q querier) error {
				_, err := run(tx, q, sess.key, sess.created)
				return err
			})
		} else {
			err = s.destroyFollowing(ctx, sess, run)
		}
		if sess.lock != nil {
			if rerr := s.release(ctx, sess, err == nil); err == nil {
				err = rerr
			}
		}
		if err != nil {
			return fmt.Errorf("session: destroy: %w", err)
		}
		s.counters.destroys.Add(1)
	}
	sess.token, sess.key, sess.exists = "", "", false
	sess.created, sess.expiry, sess.version = time.Time{}, time.Time{}, 0
	sess.values = nil
	sess.dropRaw()
	sess.resetChanges()
	sess.destroyed = true
	sess.loadErr = nil
	return nil
}

// destroyFollowing ends the session of sess with run and, when nothing
// was ended and a renewal grace window is set, the session that a renewal
// moved it to, if any: a logout that races a renewal still logs out.
func (s *Store) destroyFollowing(ctx context.Context, sess *Session,
	run func(tx *sql.Tx, q querier, key string, created time.Time) (int64, error)) error {
	tok, key, created := sess.token, sess.key, sess.created
	for hop := 0; ; hop++ {
		n, err := run(nil, nil, key, created)
		if err != nil || n > 0 || hop == maxForwardHops {
			return err
		}
		r, atTok, atKey, moved, err := s.movedTo(ctx, tok, key)
		if err != nil || !moved {
			return err
		}
		tok, key, created = atTok, atKey, r.created
	}
}

// movedTo is asked after a write to key found no row outside Locked mode.
// With a grace window it reports the live session that a renewal moved
// the session of tok and key to, through its forward row: moved is false
// when there is none (the session ended or expired). Without a window it
// runs no statement and reports nothing moved.
func (s *Store) movedTo(ctx context.Context, tok, key string) (r row, atTok, atKey string, moved bool, err error) {
	if s.cfg.renewGrace == 0 {
		return row{}, tok, key, false, nil
	}
	r, atTok, atKey, found, err := s.readLive(ctx, tok, key, s.now())
	return r, atTok, atKey, err == nil && found && atKey != key, err
}
