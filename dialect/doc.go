// Package dialect describes how each supported database spells the
// statements visitsession runs.
//
// A [Dialect] is data: it returns SQL text built once with
// [github.com/Masterminds/squirrel] in the database's placeholder format and
// identifier quoting, the DDL of the visit table, how instants are bound and
// scanned, how the driver's errors are classified, and the query that
// tells whether reads may run detached from their context. It executes
// nothing; the session engine
// ([github.com/visitsession/visitsession/session]), the schema tool
// ([github.com/visitsession/visitsession/visit.Migrate]) and the sweeper
// run what it returns.
//
// Three dialects ship:
//   - [Postgres] for PostgreSQL through github.com/jackc/pgx/v5/stdlib;
//   - [MySQL] for MySQL 8 and MariaDB 10.6+ through github.com/go-sql-driver/mysql;
//   - [SQLite] for SQLite through modernc.org/sqlite (pure Go).
//
// Instants are stored as UTC with microsecond precision whatever the
// process, server or connection time zone: timestamptz on PostgreSQL,
// DATETIME(6) bound as a UTC literal on MySQL (so neither the DSN's loc nor
// the session time_zone shifts it), and INTEGER microseconds since the Unix
// epoch on SQLite (a form that compares correctly, with no year-2038 limit).
//
// Adding a database means one new file that fills a spec and exports its
// constructor, plus its tests.
package dialect
