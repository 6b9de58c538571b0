// Package conformance is the behaviour suite of visitsession, exported so
// that anyone can run it against their own database: their PostgreSQL,
// MySQL, MariaDB or SQLite, at their version, with their server settings,
// on their own visit table, or a wire-compatible engine such as
// CockroachDB, YugabyteDB or TiDB. A pass means the session engine, the
// dialect and the sweeper behave there as documented.
//
// The suite is a list of independent cases, one per behaviour (see
// [CaseNames]): every operation and error of
// [github.com/visitsession/visitsession/session.Store], expiry exact to the
// microsecond, dates after 2038, clocks and connections in odd time zones,
// both codecs, the size limit, corrupt data, identifier validation, hashed
// and plain keys, creating a table and upgrading a TurboGears visit table
// that holds rows, the concurrency modes, and the
// [github.com/visitsession/visitsession/sweeper].
//
// # Two entry points
//
// [Run] runs the cases as subtests of a Go test, in parallel, so that go
// test -run selects them and failures read like any other:
//
//	func TestVisitTable(t *testing.T) {
//		db, err := sql.Open("pgx", os.Getenv("DATABASE_URL"))
//		if err != nil {
//			t.Fatal(err)
//		}
//		t.Cleanup(func() { db.Close() })
//		conformance.Run(t, db, dialect.Postgres())
//	}
//
// [Check] runs the same cases without the testing package, as
// testing/fstest.TestFS does, and returns a [Report]: one [Result] per case
// (name, pass, fail or skip, message) and [Report.Err]. The
// "visitsession conformance" command prints it:
//
//	visitsession conformance --driver postgres --dsn "$DATABASE_URL"
//
// # Safety
//
// By default every case works on a scratch table of its own, named
// vsconf_ and 12 random hex digits, created with
// [github.com/visitsession/visitsession/visit.Migrate] and dropped when
// the case ends; no other table is read or changed.
//
// [WithTable] points the suite at an existing table, such as the
// application's real visit table, to check its exact column types,
// collation, triggers and settings. Cases then work only on rows under
// fresh random keys that they create, and delete those rows when they end;
// they never read, change or count a row they did not create, and the
// sessions they write are dated years ahead, so that the application's
// own sweeper leaves them alone while they exist. On SQLite the
// locked-mode cases hold the database's write lock for moments, as the
// application's own locked mode does. Cases that need a table
// of their own (a missing table or column, create and upgrade, and the
// sweeper, which sweeps a whole table) still use scratch tables, in the
// same schema and with the same column names. The suite needs the rights
// to create and drop tables in that schema.
//
// A case that changes a connection's session time zone does it on a
// connection it takes from the pool and then closes, so that the setting
// never reaches other users of the pool. With [WithOpener] the suite also
// opens pools of its own, for a second application instance and for a
// whole store on a connection in another time zone; it closes them.
//
// On SQLite, use a DSN that sets busy_timeout for every connection (see
// [github.com/visitsession/visitsession/dialect.SQLite]): cases run
// concurrently and share the database's single write lock. Without it,
// pass WithParallel(false).
//
// # Reading a failure
//
// A failed case's message says what the database did and what the suite
// expected, such as "the session loaded at its expiry instant ...: Load must
// require expiry > now" or "created stored as ..., want ...: the database
// or the dialect's time encoding lost microsecond precision". Messages
// never contain session tokens, stored keys or the DSN.
package conformance
