// Package sqlmocktest holds the go-sqlmock tests of every transactional
// path of the library: the locked concurrency mode (a database/sql
// transaction with SELECT ... FOR UPDATE, or on SQLite with the statement
// that takes the write lock first, and a dialect's own BEGIN on a dedicated
// connection), renewals, the merge mode's reload after a lost
// conditional UPDATE, statement retries and their bounds, schema upgrades
// with [github.com/visitsession/visitsession/visit.Migrate] and the
// sweeper's batches. Each test states, in strict order, every statement the
// code may send and what the mock answers, so that a commit, a rollback, a
// retry or a statement too many shows as a failed expectation; and each
// checks that no connection stays in use.
//
// The tests also pin, as golden strings, the exact SQL every dialect emits
// ([github.com/visitsession/visitsession/dialect.Dialect.Statements],
// CreateTable, AddColumn, Sweep and the catalog queries), so that any change
// to a statement shows in review.
//
// The mock stands in for a database only to test transaction handling.
// Behaviour (expiry, merging, locking, the SQL itself) is tested against
// the real databases in the other packages.
//
// The package has no exported API; it exists for its tests:
//
//	go test ./sqlmocktest/
package sqlmocktest
