package session

import (
	"errors"

	"github.com/visitsession/visitsession/internal/codec"
)

var (
	// ErrNotFound reports that a session which existed when it was loaded
	// is gone: it expired, was destroyed (logout) or was renewed to a new
	// key by another request. A save that gets it wrote nothing, so a
	// concurrent save never brings back a session that was ended.
	ErrNotFound = errors.New("session not found")
	// ErrConflict reports that a save in merge mode kept losing to
	// concurrent saves of the same session for all its attempts.
	ErrConflict = errors.New("too many conflicting concurrent saves")
	// ErrTooLarge reports that the encoded session exceeds the maximum
	// size. Nothing was written; the stored data is intact.
	ErrTooLarge = errors.New("encoded session too large")
	// ErrCorrupt reports stored session data that does not decode.
	ErrCorrupt = codec.ErrCorrupt
	// ErrUnsupported reports a value the codec cannot encode.
	ErrUnsupported = codec.ErrUnsupported
	// ErrLockTimeout reports that the locked mode could not take the row
	// lock within the lock timeout.
	ErrLockTimeout = errors.New("timed out waiting for the session lock")
	// ErrLockLost reports that a locked-mode transaction was rolled back
	// by the database in favour of another one (a deadlock, or on a
	// multi-primary cluster such as Galera a write that failed
	// certification, since row locks there are local to one node). Nothing
	// was written; the request may load and try again.
	ErrLockLost = errors.New("locked session lost to a concurrent transaction; nothing was written")
	// ErrSchema reports a visit table that is missing or lacks a column.
	ErrSchema = errors.New("visit table does not match")
	// ErrClosed reports use of a Store after Close.
	ErrClosed = errors.New("store closed")
	// ErrResponseStarted reports a session change that came after the
	// response had started (its headers were written, flushed or the
	// connection was hijacked), so that the cookie could no longer carry
	// it: a new session, a renewed token or an ended session the browser
	// never learns about. Value changes of a session that already has a
	// cookie are still saved, and reported all the same, since a handler
	// that makes them is likely wrong. The middleware passes it to the
	// error handler.
	ErrResponseStarted = errors.New("session changed after the response started")
	// ErrMiddlewareOptions reports invalid [MiddlewareOptions], from
	// [NewMiddleware].
	ErrMiddlewareOptions = errors.New("invalid middleware options")
)
