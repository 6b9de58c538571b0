// Package peer compares visitsession with github.com/alexedwards/scs on
// the same databases, the same *sql.DB and the same workload: sessions
// created up front, then concurrent clients sending requests with their
// session cookie through each library's own HTTP middleware, most of them
// reading a value and a few writing one.
//
// Each library runs with its defaults on the table its documentation
// gives: visitsession in Merge mode on the visit table, scs with its gob
// codec on the sessions table of postgresstore, mysqlstore or
// sqlite3store, each with and without IdleTimeout. Statements are counted
// by kind through [countdriver].
//
// The package lives in its own module, under bench/, so that the library
// never depends on the libraries it is compared with.
//
// [countdriver]: github.com/visitsession/visitsession/bench/internal/countdriver
package peer
