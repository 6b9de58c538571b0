package session

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/visitsession/visitsession/internal/codec"
	"github.com/visitsession/visitsession/visit"
)

// Mode is the concurrency mode of saves. See the package documentation
// for the trade-offs.
type Mode int

const (
	// Merge is optimistic concurrency: a save is one UPDATE guarded by the
	// version column; when another save won in between, it reloads the
	// session and re-applies only this request's own sets and deletes on top
	// of the fresh data, a bounded number of times, then gives ErrConflict.
	Merge Mode = iota
	// LastWriteWins writes the whole session with no version check: the
	// behaviour of most session stores. A concurrent save's changes to other
	// keys can be lost.
	LastWriteWins
	// Locked is pessimistic: Load takes the row lock (SELECT ... FOR UPDATE,
	// or on SQLite the database's write lock, which an UPDATE of no row takes
	// at the start of the transaction) and holds it until Save or Release, so
	// read-modify-write sequences such as counters serialize. It holds a
	// connection for the whole request.
	Locked
)

// String returns "merge", "last-write-wins" or "locked".
func (m Mode) String() string {
	switch m {
	case Merge:
		return "merge"
	case LastWriteWins:
		return "last-write-wins"
	case Locked:
		return "locked"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Codec turns a session's values into bytes and back. Implementations
// must be safe for concurrent use; Decode errors should wrap ErrCorrupt.
type Codec = codec.Codec

// GobCodec returns the default codec: the common value types (strings,
// numbers, bools, byte slices, times, durations, string and int slices,
// string maps, and nested []any and map[string]any) in a compact binary
// form decoded without reflection, and any other type through encoding/gob
// (register it with gob.Register). Values come back with their Go types.
func GobCodec() Codec { return codec.Binary() }

// JSONCodec returns a codec that stores the session as a JSON object,
// readable by other languages. Numbers come back as json.Number, without
// loss (the typed getters convert), byte slices as base64 strings and
// times as RFC 3339 strings.
func JSONCodec() Codec { return codec.JSON() }

// Option configures a Store at Open.
type Option func(*config)

type config struct {
	table           visit.Table
	keyMode         visit.KeyMode
	mode            Mode
	codec           Codec
	idleTimeout     time.Duration
	absoluteTimeout time.Duration
	touchInterval   time.Duration
	maxSize         int
	maxAttempts     int
	maxRetries      int
	lockTimeout     time.Duration
	deleteRows      bool
	renewGrace      time.Duration
	clock           func() time.Time
	logger          *slog.Logger
	hooks           Hooks
}

func defaultConfig() config {
	return config{
		table:           visit.Default(),
		keyMode:         visit.KeyHashed,
		mode:            Merge,
		codec:           codec.Binary(),
		idleTimeout:     2 * time.Hour,
		absoluteTimeout: 24 * time.Hour,
		touchInterval:   -1,
		maxSize:         64 << 10,
		maxAttempts:     8,
		maxRetries:      5,
		lockTimeout:     5 * time.Second,
		clock:           time.Now,
	}
}

// WithTable maps the store onto a visit table with other names.
// Default: visit.Default() (table visit; columns visit_key, session_data,
// created, expiry, version).
func WithTable(t visit.Table) Option { return func(c *config) { c.table = t } }

// WithKeyMode chooses how tokens are stored in the key column.
// Default: visit.KeyHashed (only a SHA-256 prefix of the token is stored).
func WithKeyMode(m visit.KeyMode) Option { return func(c *config) { c.keyMode = m } }

// WithMode chooses the concurrency mode. Default: Merge.
func WithMode(m Mode) Option { return func(c *config) { c.mode = m } }

// WithCodec chooses how values are encoded. Default: GobCodec().
func WithCodec(cd Codec) Option { return func(c *config) { c.codec = cd } }

// WithIdleTimeout sets how long a session lives without being used; every
// save and touch moves expiry to now plus this. Default: 2h.
func WithIdleTimeout(d time.Duration) Option { return func(c *config) { c.idleTimeout = d } }

// WithAbsoluteTimeout caps a session's life counted from its creation,
// however active it is; 0 disables the cap. Default: 24h.
func WithAbsoluteTimeout(d time.Duration) Option { return func(c *config) { c.absoluteTimeout = d } }

// WithTouchInterval sets how much later a read-only request must be able to
// move expiry before it writes the new expiry: a read-only request writes
// at most once per interval. 0 touches on every request.
// Default: a tenth of the idle timeout.
func WithTouchInterval(d time.Duration) Option { return func(c *config) { c.touchInterval = d } }

// WithMaxSize sets the largest encoded session, in bytes, that Save
// writes; a larger one gives ErrTooLarge and writes nothing.
// Default: 65536 (64 KiB).
func WithMaxSize(n int) Option { return func(c *config) { c.maxSize = n } }

// WithMaxAttempts bounds how many times a merge-mode save or a renewal
// tries before it gives ErrConflict. Default: 8.
func WithMaxAttempts(n int) Option { return func(c *config) { c.maxAttempts = n } }

// WithMaxRetries bounds how many times a statement or transaction that
// failed with a retryable error (serialization failure, deadlock, lock wait
// timeout, busy database) is run again, within the context's deadline.
// Default: 5.
func WithMaxRetries(n int) Option { return func(c *config) { c.maxRetries = n } }

// WithLockTimeout bounds how long the locked mode waits for the row lock
// before ErrLockTimeout. Default: 5s.
func WithLockTimeout(d time.Duration) Option { return func(c *config) { c.lockTimeout = d } }

// WithDeleteRows makes Destroy delete the visit row instead of clearing its
// data and ending it (which keeps the row as visit history).
// Default: false (keep the row).
func WithDeleteRows(on bool) Option { return func(c *config) { c.deleteRows = on } }

// MaxRenewGrace is the longest renewal grace window WithRenewGrace
// accepts.
const MaxRenewGrace = time.Minute

// WithRenewGrace sets a grace window after Renew: for d, or until the old
// session would have expired if that is sooner, a request that still holds
// the old token (one the browser sent, in parallel, before it received the
// new cookie) reaches the renewed session, with its data, and its response
// carries the new token. Without a window such a request finds no session:
// its saves give ErrNotFound, and its handler sees an empty session.
//
// Renew then writes one more row, a forward under the old key, in the
// renewal's transaction: outside Locked mode a renewal becomes BEGIN, the
// UPDATE, the INSERT and COMMIT instead of one UPDATE. The forward holds the new token sealed with
// the old one: the table alone never gives it away, and only the old
// token's holder can follow it. That holder is also who a renewal at login
// shuts out: against session fixation, where an attacker planted the old
// token, a window lets the attacker in for its length. Keep it to a few
// seconds, or leave it off where the risk matters; Destroy, and a Renew
// without a window, end the old token at once.
//
// d must be between 0 and MaxRenewGrace. Default: 0 (no window).
func WithRenewGrace(d time.Duration) Option { return func(c *config) { c.renewGrace = d } }

// WithClock sets the clock that decides expiry. The application's clock is
// used rather than the database's so that one code path serves every
// database, expiry is exact to the microsecond, and tests can move time;
// keep the clocks of application servers synchronized (NTP).
// Default: time.Now.
func WithClock(now func() time.Time) Option { return func(c *config) { c.clock = now } }

// WithLogger sets the logger for events worth a log line (conflicts given
// up, decode errors). Default: none (nothing is logged).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithHooks sets functions called on store events, for metrics.
// Default: none.
func WithHooks(h Hooks) Option { return func(c *config) { c.hooks = h } }

func (c *config) validate() error {
	if err := c.table.Validate(); err != nil {
		return err
	}
	switch {
	case c.mode < Merge || c.mode > Locked:
		return fmt.Errorf("unknown mode %d", int(c.mode))
	case c.keyMode != visit.KeyHashed && c.keyMode != visit.KeyPlain:
		return fmt.Errorf("unknown key mode %d", int(c.keyMode))
	case c.codec == nil:
		return fmt.Errorf("codec is nil")
	case c.idleTimeout <= 0:
		return fmt.Errorf("idle timeout %v: must be positive", c.idleTimeout)
	case c.absoluteTimeout < 0:
		return fmt.Errorf("absolute timeout %v: must not be negative", c.absoluteTimeout)
	case c.touchInterval < 0 && c.touchInterval != -1:
		return fmt.Errorf("touch interval %v: must not be negative", c.touchInterval)
	case c.maxSize < 1:
		return fmt.Errorf("max size %d: must be positive", c.maxSize)
	case c.maxAttempts < 1:
		return fmt.Errorf("max attempts %d: must be at least 1", c.maxAttempts)
	case c.maxRetries < 0:
		return fmt.Errorf("max retries %d: must not be negative", c.maxRetries)
	case c.lockTimeout <= 0:
		return fmt.Errorf("lock timeout %v: must be positive", c.lockTimeout)
	case c.clock == nil:
		return fmt.Errorf("clock is nil")
	case c.renewGrace < 0 || c.renewGrace > MaxRenewGrace:
		return fmt.Errorf("renew grace %v: must be between 0 and %v", c.renewGrace, MaxRenewGrace)
	}
	if c.touchInterval == -1 {
		c.touchInterval = c.idleTimeout / 10
	}
	return nil
}
