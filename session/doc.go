// Package session is the session engine: sessions kept in the visit table
// of the application's own database, through its own *sql.DB.
//
// Open a [Store] on a migrated visit table (see
// [github.com/visitsession/visitsession/visit.Migrate]) with the dialect of
// the database:
//
//	store, err := session.Open(ctx, db, dialect.Postgres())
//
// A [Session] is a string-keyed map of values with typed getters that
// remembers which keys this request set or deleted. [Store.Load] reads one
// in a single round trip; [Store.Save] writes only what changed; [Store.Renew]
// rotates the token at login; [Store.Destroy] ends the session at logout;
// [Store.Touch] extends the expiry without writing data.
//
// # Keys
//
// The cookie carries a 40-character token with 240 random bits. By default
// the table stores only a hash of it ([visit.KeyHashed]), so reading the
// table gives an attacker no usable session. A malformed token costs no
// query, and an unknown one is never adopted: the visitor gets a fresh
// token when the session is first written. Rows are created lazily: a
// session that never holds a value is never written.
//
// # Values
//
// With the default codec ([GobCodec]) a load checks the stored data whole,
// so that data that does not decode is reported by the load
// ([ErrCorrupt]), and then decodes values as they are read: a request that
// reads one value of a large session decodes that one. Listing
// ([Session.Keys], [Session.Values]) or a ninth read decodes the session
// whole; changes do not: they are kept beside the loaded data, and a save
// writes that data with the changed values patched in, re-encoding only
// those; a read after the save checks the written data, once, and a
// request that saves last never walks it again. A save or renewal of a
// session that was not changed stores the loaded bytes as they are. A
// value changed in place, such as a slice that Get returned, is saved only
// when given to Set again.
//
// # Expiry
//
// A session lives for the idle timeout after its last save or touch, and
// never longer than the absolute timeout after its creation; expiry only
// moves forward. The application's clock decides (injectable with
// [WithClock]): one code path for every database, exact to the microsecond.
// Expired sessions are never returned, whether or not the sweeper has
// removed them yet.
//
// # Concurrency modes
//
// Two requests of one visitor often run at once. The [Mode] chosen at Open
// decides what happens when both change the session:
//
//   - [Merge] (the default) is optimistic. A save is one UPDATE guarded by
//     the version column; if another save got in first, the store reloads
//     the row and re-applies only this request's own sets and deletes, so
//     changes to different keys are never lost. Uncontended, a save is one
//     round trip. Two requests that set the same key: the later save wins.
//     Read-modify-write of one key (a counter) can lose an increment.
//   - [LastWriteWins] writes the whole session with no check, in one
//     statement: the behaviour of most session stores. Changes made by a
//     concurrent request to other keys can be lost.
//   - [Locked] is pessimistic: Load takes the row lock and holds it until
//     Save, Renew, Destroy or Release, so read-modify-write sequences
//     serialize and counters never lose an increment. It costs a
//     transaction (two more round trips) and a pooled connection held for
//     the whole request, and concurrent requests of one visitor wait for
//     each other up to the lock timeout ([ErrLockTimeout]).
//
// In every mode a session ended or renewed by another request is not
// brought back: the save reports [ErrNotFound]. With a renewal grace
// window ([WithRenewGrace]) a request still holding the replaced token
// reaches the renewed session instead, for the length of the window.
//
// # Errors
//
// The sentinel errors are in one file; each method's documentation names
// those it returns. Errors are wrapped once with the operation and never
// contain a token, a key or a DSN.
package session
