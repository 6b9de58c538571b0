package session

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Session is one visitor's session: a map of values with typed getters,
// plus the bookkeeping the store needs to save only what this request
// changed. A Session is safe for concurrent use by the goroutines of one
// request. Get it from Store.Load, Store.New or, in a handler behind the
// middleware, FromContext.
type Session struct {
	mu    sync.Mutex
	store *Store

	// Lazy loading: while lazy is set, token is the token to load, and
	// ensure loads it once on first use, under ctx (the context given to
	// Store.Lazy) unless Load names another.
	ctx     context.Context
	loadErr error

	token   string // cookie token, "" until the session is first written; while lazy, the token to load
	key     string // stored key of token; "" when no row exists
	created time.Time
	expiry  time.Time
	version int64

	// values holds the session's values; while raw stands for them, only
	// those set since it was loaded (the ones set before a save stay,
	// unused: see wrote).
	values map[string]any
	// raw is data the codec has checked whole, or patched from such data:
	// the session's loaded or last written data. Until rawDecoded is set
	// it stands for the values with changes on top: reads decode just the
	// value they ask for from it, changes go to values and changes, and
	// listing, a read past maxRawReads or a save the codec cannot patch
	// decodes it into values.
	// Once decoded it is what values held before changes. A save writes
	// its new data by patching raw with the changes (codec.Patcher).
	raw      []byte
	rawLen   int32                // number of values in raw
	rawReads int32                // values read from raw so far
	rawIndex [rawIndexSize]uint32 // where raw's keys are, for Lookup, once raw is checked

	// changes holds the keys set (true) or deleted (false) since the
	// last save.
	changes map[string]bool

	lock *heldLock // locked mode: the transaction holding the row lock

	lazy       bool // the load waits for the first use
	rawDecoded bool // values holds raw's values, with changes on top
	rawPatched bool // raw was patched by the last save, not yet checked (indexRaw)
	exists     bool // a row exists under key
	cleared    bool // Clear was called since the last save
	destroyed  bool // Destroy ended the session in this request
	renewed    bool // Renew gave the session a new token in this request
}

// maxRawReads is how many values a session reads one by one from its
// loaded data before decoding it whole: a request reading a few values of
// a session decodes only those, and one reading many decodes each at most
// twice.
const maxRawReads = 8

// rawIndexSize is how many keys of its loaded data a session indexes: a
// read finds its value among them by binary search, and then walks the
// entries between two indexed keys. Fourteen keeps a Session within 256
// bytes, one allocation size class below the next.
const rawIndexSize = 14

// lookupLocked returns the value under key. It must be called with mu held.
func (s *Session) lookupLocked(key string) (any, bool) {
	if s.rawStands() {
		if set, changed := s.changes[key]; changed {
			v, ok := s.values[key]
			return v, set && ok
		}
		if s.rawReads < maxRawReads && s.indexRaw() {
			s.rawReads++
			if v, ok, err := s.store.indexed.Lookup(s.raw, s.rawIndex[:], key); err == nil {
				return v, ok
			}
		}
	}
	s.decodeRaw()
	v, ok := s.values[key]
	return v, ok
}

// rawHas reports whether raw, standing for the values and indexed
// (indexRaw), holds key. It must be called with mu held.
func (s *Session) rawHas(key string) bool {
	_, ok, err := s.store.indexed.Lookup(s.raw, s.rawIndex[:], key)
	return ok && err == nil
}

// rawStands reports whether raw stands for the session's values, not yet
// decoded.
func (s *Session) rawStands() bool { return s.raw != nil && !s.rawDecoded }

// indexRaw readies raw, while it stands for the values, for Lookup: data
// a save patched is checked and indexed on its first read, so that a
// request that saves and reads no more never walks it. Data the codec
// does not vouch for after all is decoded (decodeRaw). It reports whether
// raw still stands for the values. It must be called with mu held.
func (s *Session) indexRaw() bool {
	if !s.rawPatched {
		return true
	}
	s.rawPatched = false
	if n, ok := s.store.indexed.Check(s.raw, s.rawIndex[:]); ok && int32(n) == s.rawLen {
		return true
	}
	s.decodeRaw()
	return false
}

// decodeRaw turns the loaded data into values, if still undecoded, with
// the changes made since on top, and keeps it as the base of the next
// save. It must be called with mu held.
func (s *Session) decodeRaw() {
	if !s.rawStands() {
		return
	}
	values, err := s.store.decode(s.raw)
	if err != nil {
		s.dropRaw()
		if s.loadErr == nil {
			// Checked or patched data that does not decode after all is
			// reported as a load of undecodable data is: the session
			// holds only what it set, and a save replaces the data.
			s.loadErr = fmt.Errorf("session: load: %w", err)
		}
		values = s.values
	} else {
		s.rawDecoded, s.rawPatched, s.rawLen, s.rawReads = true, false, 0, 0
	}
	if values == nil && len(s.changes) > 0 {
		values = make(map[string]any, len(s.changes))
	}
	s.values = s.applyChanges(values)
}

// applyChanges applies the session's changes to values, taking the values
// set from the session's own, and returns it.
func (s *Session) applyChanges(values map[string]any) map[string]any {
	for k, set := range s.changes {
		if set {
			values[k] = s.values[k]
		} else {
			delete(values, k)
		}
	}
	return values
}

// dropRaw forgets the loaded data, once values alone stand for the session.
func (s *Session) dropRaw() {
	s.raw, s.rawDecoded, s.rawPatched, s.rawLen, s.rawReads = nil, false, false, 0, 0
}

// wrote records that data, the encoding of the session's values, was
// written: the changes are saved, and data becomes the base of the next
// save. A session reading its values from raw goes on reading them from
// data: data the codec patched from raw (patched, the number of its
// values, is not negative) is checked and indexed on its first read
// (indexRaw), other data at once. The values it set stay in values,
// unused, so that changes restored after a rolled-back renewal still find
// theirs.
func (s *Session) wrote(data []byte, patched int) {
	lazy := s.rawStands() && len(s.changes) > 0
	s.resetChanges()
	if !lazy {
		if !s.rawStands() {
			s.raw, s.rawDecoded, s.rawPatched, s.rawLen, s.rawReads = data, data != nil, false, 0, 0
		}
		return
	}
	if patched >= 0 && len(data) > 0 {
		s.raw, s.rawPatched, s.rawLen, s.rawReads = data, true, int32(patched), 0
		return
	}
	if n, ok := s.store.indexed.Check(data, s.rawIndex[:]); ok && len(data) > 0 {
		s.raw, s.rawPatched, s.rawLen, s.rawReads = data, false, int32(n), 0
		return
	}
	values, err := s.store.decode(data)
	s.dropRaw()
	if err != nil {
		// Written data that does not decode, a codec fault: the session
		// keeps the values it set, and reports the fault as a load of
		// undecodable data does.
		if s.loadErr == nil {
			s.loadErr = fmt.Errorf("session: save: %w", err)
		}
		return
	}
	s.values = values
	s.raw, s.rawDecoded = data, data != nil
}

// lenLocked returns the number of values. It must be called with mu held.
func (s *Session) lenLocked() int {
	if !s.rawStands() || !s.indexRaw() {
		return len(s.values)
	}
	n := int(s.rawLen)
	for k, set := range s.changes {
		if in := s.rawHas(k); set && !in {
			n++
		} else if !set && in {
			n--
		}
	}
	return n
}

// heldLock is the open transaction of a locked-mode session.
type heldLock struct {
	ctx  context.Context // the load's context, which the transaction lives by
	tx   *sql.Tx         // database/sql transaction, or
	conn *sql.Conn       // a dedicated connection with a manual transaction
}

// ensure runs the lazy load, once. It must be called with mu held.
func (s *Session) ensure() {
	s.ensureWith(s.ctx)
}

// ensureWith runs the lazy load, once, under ctx. It must be called with mu
// held.
func (s *Session) ensureWith(ctx context.Context) {
	if s.lazy {
		tok := s.token
		s.lazy, s.token = false, ""
		s.loadErr = s.store.load(ctx, s, tok)
	}
}

// Err returns the error of the session's lazy load, if it failed. A
// session whose load failed behaves as empty, and saving it writes nothing.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	return s.loadErr
}

// Load runs the lazy load now, with ctx governing it when it has not run
// yet, and returns its error.
func (s *Session) Load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureWith(ctx)
	return s.loadErr
}

// Token returns the value for the session cookie: "" while the session has
// never been written (there is nothing to point a cookie at).
func (s *Session) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	return s.token
}

// IsNew reports whether the session has no stored row yet.
func (s *Session) IsNew() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	return !s.exists
}

// Created returns when the session was first written (zero while new).
func (s *Session) Created() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	return s.created
}

// Expiry returns when the session expires unless used again (zero while
// new).
func (s *Session) Expiry() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	return s.expiry
}

// Get returns the value stored under key, or nil. A slice or map it
// returns may be the session's own: change a value with Set, never in
// place.
//
// A loaded session decodes the values it is asked for one at a time, so a
// request that reads a few values of a large session pays for those. The
// first eight reads each decode their value anew; after them, or once the
// session is changed or listed, it is decoded whole, once.
func (s *Session) Get(key string) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	v, _ := s.lookupLocked(key)
	return v
}

// Lookup returns the value stored under key and whether it exists.
func (s *Session) Lookup(key string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	return s.lookupLocked(key)
}

// Has reports whether key holds a value.
func (s *Session) Has(key string) bool {
	_, ok := s.Lookup(key)
	return ok
}

// Keys returns the keys in sorted order.
func (s *Session) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	s.decodeRaw()
	return slices.Sorted(maps.Keys(s.values))
}

// Len returns the number of values.
func (s *Session) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	return s.lenLocked()
}

// Values returns a copy of all values.
func (s *Session) Values() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	s.decodeRaw()
	return maps.Clone(s.values)
}

// Set stores value under key. The codec must support the value's type;
// the default codec takes the common types and anything registered with
// gob.Register.
//
// A save writes what Set, Delete, Pop and Clear changed: a value changed in
// place, such as a slice that Get returned, is saved only when given to Set
// again.
func (s *Session) Set(key string, value any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	if s.values == nil {
		s.values = make(map[string]any)
	}
	s.values[key] = value
	if s.changes == nil {
		s.changes = make(map[string]bool)
	}
	s.changes[key] = true
}

// Delete removes key. Deleting a missing key is not a change.
func (s *Session) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	s.deleteLocked(key)
}

// deleteLocked removes key, recording the change. It must be called with
// mu held.
func (s *Session) deleteLocked(key string) {
	if s.rawStands() && s.indexRaw() {
		if set, changed := s.changes[key]; !set && (changed || !s.rawHas(key)) {
			return
		}
	} else if _, ok := s.values[key]; !ok {
		return
	}
	delete(s.values, key)
	if s.changes == nil {
		s.changes = make(map[string]bool)
	}
	s.changes[key] = false
}

// Pop returns the value under key and deletes it, as for flash messages.
func (s *Session) Pop(key string) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	v, ok := s.lookupLocked(key)
	if ok {
		s.deleteLocked(key)
	}
	return v
}

// Clear removes every value. The visit continues; to end it use
// Store.Destroy.
func (s *Session) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	if s.lenLocked() == 0 && !s.exists {
		return
	}
	s.dropRaw()
	clear(s.values)
	clear(s.changes)
	s.cleared = true
}

// Changed reports whether the session holds changes not yet saved.
func (s *Session) Changed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changedLocked()
}

func (s *Session) changedLocked() bool {
	return s.cleared || len(s.changes) > 0
}

// Destroyed reports whether Store.Destroy ended the session.
func (s *Session) Destroyed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.destroyed
}

// Renewed reports whether Store.Renew gave the session a new token.
func (s *Session) Renewed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renewed
}

// GetString returns the string under key, or "" if absent or not a string.
func (s *Session) GetString(key string) string {
	v, _ := s.Get(key).(string)
	return v
}

// GetBool returns the bool under key, or false.
func (s *Session) GetBool(key string) bool {
	v, _ := s.Get(key).(bool)
	return v
}

// GetBytes returns the byte slice under key, or nil.
func (s *Session) GetBytes(key string) []byte {
	v, _ := s.Get(key).([]byte)
	return v
}

// GetInt returns the integer under key, or 0. It converts any integer
// type, and a float64 or json.Number holding a whole number (as JSON
// decodes numbers).
func (s *Session) GetInt(key string) int {
	return int(s.GetInt64(key))
}

// GetInt64 returns the integer under key as int64, or 0, converting as
// GetInt does.
func (s *Session) GetInt64(key string) int64 {
	switch v := s.Get(key).(type) {
	case int:
		return int64(v)
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case int64:
		return v
	case uint:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		return int64(v)
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
			return int64(v)
		}
	case json.Number:
		n, _ := v.Int64()
		return n
	}
	return 0
}

// GetFloat64 returns the number under key as float64, or 0.
func (s *Session) GetFloat64(key string) float64 {
	switch v := s.Get(key).(type) {
	case float64:
		return v
	case float32:
		return float64(v)
	case json.Number:
		f, _ := v.Float64()
		return f
	case string:
		return 0
	case nil:
		return 0
	}
	return float64(s.GetInt64(key))
}

// GetTime returns the time under key, or the zero time. It also parses an
// RFC 3339 string (as the JSON codec stores times).
func (s *Session) GetTime(key string) time.Time {
	switch v := s.Get(key).(type) {
	case time.Time:
		return v
	case string:
		t, _ := time.Parse(time.RFC3339Nano, v)
		return t
	}
	return time.Time{}
}

// GetDuration returns the duration under key, or 0.
func (s *Session) GetDuration(key string) time.Duration {
	switch v := s.Get(key).(type) {
	case time.Duration:
		return v
	case string:
		d, _ := time.ParseDuration(v)
		return d
	}
	return time.Duration(s.GetInt64(key))
}

// GetStrings returns the string slice under key, or nil. It also converts
// a []any of strings (as JSON decodes arrays).
func (s *Session) GetStrings(key string) []string {
	switch v := s.Get(key).(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			str, ok := e.(string)
			if !ok {
				return nil
			}
			out = append(out, str)
		}
		return out
	}
	return nil
}

// String describes the session for logs without revealing its token or
// values.
func (s *Session) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "session(" + strconv.Itoa(s.lenLocked()) + " values, version " + strconv.FormatInt(s.version, 10) + ")"
}
