// Package visit describes the visit table that holds sessions and the keys
// that identify its rows.
//
// The layout follows TurboGears' visit tracking: a table named visit with a
// 40-character primary key visit_key, the session_data blob (NULL while the
// session is empty), and the created and expiry instants. visitsession adds
// one integer column, version, that the session engine uses for optimistic
// concurrency control. Every name is configurable through [Table], so the
// library can map onto a table an application already has; names are
// validated by [Table.Validate] and never concatenated into SQL unchecked.
//
// Keys are random tokens of [TokenLength] characters carrying 240 bits from
// crypto/rand ([NewToken]). The cookie holds the token; by default the table
// holds only [HashToken] of it, so a dump of the table yields no live
// session. [ParseToken] rejects a malformed token before any query is run.
//
// [Migrate] creates the table with its expiry index, or upgrades an existing
// visit table by adding only the columns it lacks; [Plan] returns the same
// statements for a DBA to review instead of running them.
package visit
