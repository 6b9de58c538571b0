package session_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// The fault tests break connections under the store and check what the
// library promises about them: a save happens entirely or not at all (the
// row holds either the old data and version or the new data and the next
// version, never a mix), the pool works again afterwards, and neither a
// connection nor a goroutine is left behind.
//
// Each runs on a database of its own (a file on SQLite), created on the
// target's server for the test and dropped after it, so that killing every
// connection to it (a stand-in for a server restart) touches no other
// test's connections. Server-side kills need PostgreSQL or MariaDB/MySQL.

// faultCancelTrials is the number of cancelled requests per concurrency
// mode in TestFaultContextCancelled, about 100 per dialect; the Stress
// variant runs faultCancelStressTrials per mode.
const (
	faultCancelTrials       = 34
	faultCancelStressTrials = 1000
)

// everyMode lists the concurrency modes, for the fault and pool tests.
var everyMode = []session.Mode{session.Merge, session.LastWriteWins, session.Locked}

// faultEach runs f for each of kinds, as testdb.Each does for all of them:
// a subtest per dialect, limited by VISITSESSION_ONLY, failed rather than
// skipped under VISITSESSION_REQUIRE_ALL=1.
func faultEach(t *testing.T, kinds []string, f func(t *testing.T, tg *testdb.Target)) {
	t.Helper()
	only := os.Getenv(testdb.EnvOnly)
	for _, kind := range kinds {
		if only != "" && only != kind {
			continue
		}
		t.Run(kind, func(t *testing.T) { f(t, testdb.Get(t, kind)) })
	}
}

// faultNoLeaks runs f as the subtest name, then, once f's cleanups have
// closed its pools, checks that no goroutine started during f is left.
func faultNoLeaks(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	if t.Run(name, f) {
		goleak.VerifyNone(t, before)
	}
}

// faultDB is a database of the fault tests' own, holding a visit table
// made by visit.Migrate.
type faultDB struct {
	tg    *testdb.Target
	name  string  // the database's name (SQLite: the file)
	admin *sql.DB // one connection to the server outside name: nil on SQLite
	dsn   string
	app   string // PostgreSQL application_name of the pools from pool
	tab   visit.Table
}

// newFaultDB creates the database on tg's server and drops it at the end
// of the test.
func newFaultDB(t *testing.T, tg *testdb.Target) *faultDB {
	t.Helper()
	ctx := context.Background()
	suffix := testdb.RandomSuffix()
	e := &faultDB{tg: tg, name: "vs_fault_" + suffix, app: "vsfault_" + suffix, tab: visit.Default()}
	switch tg.Kind {
	case "sqlite":
		e.dsn = dialect.SQLiteFileDSN(filepath.Join(t.TempDir(), e.name+".db"))
	case "postgres":
		u, err := url.Parse(tg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + e.name
		e.dsn = u.String()
	case "mysql":
		cfg, err := mysql.ParseDSN(tg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DBName = e.name
		e.dsn = cfg.FormatDSN()
	}
	if tg.Kind != "sqlite" {
		admin, err := sql.Open(tg.Driver, tg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		admin.SetMaxOpenConns(1) // one connection, opened here: no goroutine appears later
		t.Cleanup(func() { admin.Close() })
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+e.name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			drop := "DROP DATABASE IF EXISTS " + e.name
			if tg.Kind == "postgres" {
				drop += " WITH (FORCE)"
			}
			if _, err := admin.ExecContext(context.Background(), drop); err != nil {
				t.Errorf("drop the fault database: %v", err)
			}
		})
		e.admin = admin
	}
	db, err := sql.Open(tg.Driver, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := visit.Migrate(ctx, db, tg.Dialect, e.tab); err != nil {
		t.Fatal(err)
	}
	return e
}

// pool opens a pool of at most maxOpen connections, all kept when idle,
// on the fault database; role tags its connections (PostgreSQL's
// application_name) for kill. It is closed at the end of the test.
func (e *faultDB) pool(t *testing.T, role string, maxOpen int) *sql.DB {
	t.Helper()
	dsn := e.dsn
	if e.tg.Kind == "postgres" {
		u, _ := url.Parse(dsn)
		q := u.Query()
		q.Set("application_name", e.app+"_"+role)
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	db, err := sql.Open(e.tg.Driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxOpen)
	t.Cleanup(func() { db.Close() })
	return db
}

// store opens a store on db in mode m, closed at the end of the test.
func (e *faultDB) store(t *testing.T, db *sql.DB, m session.Mode, opts ...session.Option) *session.Store {
	t.Helper()
	st, err := session.Open(context.Background(), db, e.tg.Dialect, append([]session.Option{session.WithTable(e.tab), session.WithMode(m)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// arg returns the dialect's placeholder for the n-th argument.
func (e *faultDB) arg(n int) string {
	if e.tg.Kind == "postgres" {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// faultState is a stored row as the fault tests compare it.
type faultState struct {
	found   bool
	version int64
	values  map[string]any
}

func (s faultState) String() string {
	if !s.found {
		return "no row"
	}
	return fmt.Sprintf("version %d %v", s.version, s.values)
}

func (s faultState) equal(o faultState) bool {
	return s.found == o.found && s.version == o.version && reflect.DeepEqual(s.values, o.values)
}

// next is s after one save that replaced its values with values.
func (s faultState) next(values map[string]any) faultState {
	return faultState{found: true, version: s.version + 1, values: values}
}

// row reads token's row straight from the table through db, outside any
// store: its version and its decoded data.
func (e *faultDB) row(t *testing.T, db *sql.DB, token string) faultState {
	t.Helper()
	var data []byte
	var s faultState
	err := db.QueryRow("SELECT session_data, version FROM visit WHERE visit_key = "+e.arg(1), visit.HashToken(token)).Scan(&data, &s.version)
	if errors.Is(err, sql.ErrNoRows) {
		return s
	}
	if err != nil {
		t.Fatalf("read the row: %v", err)
	}
	s.found = true
	if len(data) > 0 {
		if s.values, err = session.GobCodec().Decode(data); err != nil {
			t.Fatalf("the stored data does not decode: %v", err)
		}
	}
	return s
}

// seed writes a session holding values through st and returns its token
// and stored state.
func (e *faultDB) seed(t *testing.T, st *session.Store, values map[string]any) (string, faultState) {
	t.Helper()
	s := st.New()
	for k, v := range values {
		s.Set(k, v)
	}
	if err := st.Save(context.Background(), s); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return s.Token(), faultState{found: true, version: 1, values: values}
}

// adminQuery runs query on the admin connection and returns the first
// column of every row.
func (e *faultDB) adminQuery(t *testing.T, query string, args ...any) []int64 {
	t.Helper()
	rows, err := e.admin.Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// backends returns the server ids of the fault database's connections:
// those of the pools of role when role is not empty (on MariaDB/MySQL, the
// connections other than the blockers'), and only those in state: "lock"
// for a statement waiting for a lock, "transaction" for an open
// transaction, "" for any. MariaDB's information_schema.innodb_trx is a
// cache that can lag far behind, so there "transaction" only asks for a
// connection that is not running a statement; the callers know that the
// one connection of their pool holds the transaction.
func (e *faultDB) backends(t *testing.T, role, state string, blockers []int64) []int64 {
	t.Helper()
	switch e.tg.Kind {
	case "postgres":
		q := "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
		args := []any{e.name}
		if role != "" {
			q += " AND application_name = $2"
			args = append(args, e.app+"_"+role)
		}
		switch state {
		case "lock":
			q += " AND wait_event_type = 'Lock'"
		case "transaction":
			q += " AND state LIKE 'idle in transaction%'"
		}
		return e.adminQuery(t, q, args...)
	case "mysql":
		q := "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()"
		switch state {
		case "lock":
			q += " AND info IS NOT NULL AND state LIKE '%lock%'"
		case "transaction":
			q += " AND command = 'Sleep'"
		}
		ids := e.adminQuery(t, q, e.name)
		if role == "" {
			return ids
		}
		return slices.DeleteFunc(ids, func(id int64) bool { return slices.Contains(blockers, id) })
	}
	t.Fatalf("no server connections on %s", e.tg.Kind)
	return nil
}

// waitBackends waits until backends finds at least n connections, and
// returns them.
func (e *faultDB) waitBackends(t *testing.T, n int, role, state string, blockers []int64) []int64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ids := e.backends(t, role, state, blockers)
		if len(ids) >= n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 15s for %d connections of role %q in state %q; found %v among:\n%s", n, role, state, ids, e.describe(t))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// describe lists the server's connections to the fault database, one a
// line, for failure messages.
func (e *faultDB) describe(t *testing.T) string {
	t.Helper()
	var q string
	switch e.tg.Kind {
	case "postgres":
		q = "SELECT concat_ws(' ', pid, application_name, state, wait_event_type, left(query, 80)) FROM pg_stat_activity WHERE datname = $1"
	case "mysql":
		q = "SELECT concat_ws(' ', id, command, state, left(info, 80)) FROM information_schema.processlist WHERE db = ?"
	}
	rows, err := e.admin.Query(q, e.name)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err.Error()
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// kill has the server end the connections ids, as an administrator or a
// crashing backend would, and waits until they are gone.
func (e *faultDB) kill(t *testing.T, ids []int64) {
	t.Helper()
	for _, id := range ids {
		var err error
		switch e.tg.Kind {
		case "postgres":
			_, err = e.admin.Exec("SELECT pg_terminate_backend($1, 10000)", id)
		case "mysql":
			_, err = e.admin.Exec(fmt.Sprintf("KILL CONNECTION %d", id))
			var myErr *mysql.MySQLError
			if errors.As(err, &myErr) && myErr.Number == 1094 { // ER_NO_SUCH_THREAD: it ended by itself
				err = nil
			}
		}
		if err != nil {
			t.Fatalf("kill connection %d: %v", id, err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		left := slices.DeleteFunc(e.backends(t, "", "", nil), func(id int64) bool { return !slices.Contains(ids, id) })
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections %v outlived their kill by 15s", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// restart kills every connection to the fault database: a stand-in for a
// restart of the database server, as seen by the pools on it (every
// connection, idle or busy, ends at once; new ones can be opened).
func (e *faultDB) restart(t *testing.T) int {
	t.Helper()
	ids := e.backends(t, "", "", nil)
	e.kill(t, ids)
	return len(ids)
}

// settle makes the row's state final after a request that failed: it
// closes app's idle connections and waits until the server has no
// connection to the fault database left but check's. A cancelled
// statement can outlive the error its client got: pgx and the MariaDB
// driver give up on the connection at once, while the server still reads
// and runs what was sent, commits it, and only then sees the connection
// closed. SQLite runs in process: there is nothing to wait for.
func (e *faultDB) settle(t *testing.T, app, check *sql.DB) {
	t.Helper()
	app.SetMaxIdleConns(0) // closes the idle connections
	app.SetMaxIdleConns(1)
	if e.admin == nil {
		return
	}
	var q string
	switch e.tg.Kind {
	case "postgres":
		q = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'"
	case "mysql":
		q = "SELECT count(*) FROM information_schema.processlist WHERE db = ?"
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int
		if err := e.admin.QueryRow(q, e.name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n <= check.Stats().OpenConnections {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15s the server still has %d connections to the fault database:\n%s", n, e.describe(t))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// block takes a lock on the fault database, from a connection of the role
// "blocker", that makes every statement of other connections on the visit
// table wait: an exclusive table lock. It returns the lock holder's server
// id and the function that releases it (also run at the end of the test).
func (e *faultDB) block(t *testing.T) (id int64, release func()) {
	t.Helper()
	ctx := context.Background()
	db := e.pool(t, "blocker", 1)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The lock waits at most 15 seconds for others to finish with the
	// table, so that a transaction a failed check left open ends the test
	// instead of hanging it.
	var lock, unlock string
	switch e.tg.Kind {
	case "postgres":
		err = conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&id)
		lock, unlock = "BEGIN; SET LOCAL lock_timeout = '15s'; LOCK TABLE visit IN ACCESS EXCLUSIVE MODE", "ROLLBACK"
	case "mysql":
		err = conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id)
		if err == nil {
			_, err = conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = 15")
		}
		lock, unlock = "LOCK TABLES visit WRITE", "UNLOCK TABLES"
	default:
		t.Fatalf("no table lock on %s", e.tg.Kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, lock); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		if _, err := conn.ExecContext(ctx, unlock); err != nil {
			t.Errorf("release the table lock: %v", err)
		}
		conn.Close()
	}
	t.Cleanup(release)
	return id, release
}

// faultNoneInUse fails t unless every connection of db has gone back to
// the pool (or been discarded) within a few seconds.
func faultNoneInUse(t *testing.T, db *sql.DB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for db.Stats().InUse != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := db.Stats().InUse; n != 0 {
		t.Errorf("%d connections still in use", n)
	}
}

// faultWait returns the error that errc delivers, failing t if the
// operation does not end in time.
func faultWait(t *testing.T, what string, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not end within 30s of its connection being killed", what)
		return nil
	}
}

// TestFaultConnectionKilled has the server kill the store's connection
// while a load, save, renewal or destroy is waiting on it (an exclusive
// table lock held by another connection makes the statement wait), and,
// in Locked mode, while a loaded session holds its transaction between
// load and save. The operation fails or completes as a whole, the
// connection is not leaked, and the next operation on the same pool of
// one connection works.
func TestFaultConnectionKilled(t *testing.T) {
	faultEach(t, []string{"postgres", "mysql"}, func(t *testing.T, tg *testdb.Target) {
		e := newFaultDB(t, tg)
		old := map[string]any{"v": "old", "n": 1}
		now := map[string]any{"v": "new", "n": 2}

		// killWaiting runs op in the background, kills the connection once
		// op's statement waits for the table lock, releases the lock and
		// returns op's error. (Where the driver knows that the statement
		// never reached the server, database/sql runs it again on a new
		// connection: op may then succeed.)
		killWaiting := func(t *testing.T, what string, op func() error) error {
			t.Helper()
			blocker, release := e.block(t)
			errc := make(chan error, 1)
			go func() { errc <- op() }()
			e.kill(t, e.waitBackends(t, 1, "app", "lock", []int64{blocker}))
			release()
			err := faultWait(t, what, errc)
			t.Logf("%s with its connection killed: %v", what, err)
			return err
		}

		// A load runs the same statement in Merge and LastWriteWins mode.
		for _, m := range []session.Mode{session.Merge, session.Locked} {
			faultNoLeaks(t, "load/"+m.String(), func(t *testing.T) {
				ctx := t.Context() // its end rolls back a lock a failed check left held
				db := e.pool(t, "app", 1)
				st := e.store(t, db, m)
				tok, before := e.seed(t, st, old)
				var s *session.Session
				err := killWaiting(t, "load", func() (err error) {
					s, err = st.Load(ctx, tok)
					return err
				})
				if err == nil {
					// A reconnect ran the load again once the lock was gone.
					if s.IsNew() || !reflect.DeepEqual(s.Values(), old) {
						t.Fatalf("load succeeded with new=%v values %v", s.IsNew(), s.Values())
					}
				}
				st.Release(ctx, s)
				faultNoneInUse(t, db)
				if got := e.row(t, db, tok); !got.equal(before) {
					t.Fatalf("row after a killed load: %v, want %v", got, before)
				}
				s, err = st.Load(ctx, tok)
				if err != nil || s.IsNew() {
					t.Fatalf("load after the kill: new=%v %v", s.IsNew(), err)
				}
				s.Set("v", "new")
				s.Set("n", 2)
				if err := st.Save(ctx, s); err != nil {
					t.Fatalf("save after the kill: %v", err)
				}
				if got, want := e.row(t, db, tok), before.next(now); !got.equal(want) {
					t.Fatalf("row after the next save: %v, want %v", got, want)
				}
				faultNoneInUse(t, db)
			})
		}

		for _, m := range []session.Mode{session.Merge, session.LastWriteWins} {
			faultNoLeaks(t, "save/"+m.String(), func(t *testing.T) {
				ctx := t.Context()
				db := e.pool(t, "app", 1)
				st := e.store(t, db, m)
				tok, before := e.seed(t, st, old)
				s, err := st.Load(ctx, tok)
				if err != nil {
					t.Fatal(err)
				}
				s.Set("v", "new")
				s.Set("n", 2)
				err = killWaiting(t, "save", func() error { return st.Save(ctx, s) })
				faultNoneInUse(t, db)
				got := e.row(t, db, tok)
				switch {
				case err == nil && !got.equal(before.next(now)):
					t.Fatalf("save succeeded, row %v, want %v", got, before.next(now))
				case err != nil && !got.equal(before):
					t.Fatalf("save failed (%v), row %v, want it untouched: %v", err, got, before)
				case err != nil:
					// The session kept its changes: saving it again works.
					if err := st.Save(ctx, s); err != nil {
						t.Fatalf("second save after the kill: %v", err)
					}
					if got := e.row(t, db, tok); !got.equal(before.next(now)) {
						t.Fatalf("row after the second save: %v, want %v", got, before.next(now))
					}
				}
				faultNoneInUse(t, db)
			})
		}

		faultNoLeaks(t, "save/locked", func(t *testing.T) {
			ctx := t.Context()
			db := e.pool(t, "app", 1)
			st := e.store(t, db, session.Locked)
			tok, before := e.seed(t, st, old)
			s, err := st.Load(ctx, tok)
			if err != nil || !s.Locked() {
				t.Fatalf("load: locked=%v %v", s.Locked(), err)
			}
			s.Set("v", "new")
			s.Set("n", 2)
			e.kill(t, e.waitBackends(t, 1, "app", "transaction", nil))
			err = st.Save(ctx, s)
			t.Logf("save of a locked session whose connection was killed: %v", err)
			if err == nil {
				t.Fatal("save succeeded on a connection the server had killed")
			}
			faultNoneInUse(t, db)
			if got := e.row(t, db, tok); !got.equal(before) {
				t.Fatalf("row after a killed locked save: %v, want it untouched: %v", got, before)
			}
			s, err = st.Load(ctx, tok)
			if err != nil || !s.Locked() {
				t.Fatalf("load after the kill: locked=%v %v", s.Locked(), err)
			}
			s.Set("v", "new")
			s.Set("n", 2)
			if err := st.Save(ctx, s); err != nil {
				t.Fatalf("save after the kill: %v", err)
			}
			if got := e.row(t, db, tok); !got.equal(before.next(now)) {
				t.Fatalf("row after the next save: %v, want %v", got, before.next(now))
			}
			faultNoneInUse(t, db)
		})

		// A renewal runs the same statement in Merge and LastWriteWins
		// mode; in Locked mode the connection dies while the session holds
		// its transaction.
		for _, m := range []session.Mode{session.Merge, session.Locked} {
			faultNoLeaks(t, "renew/"+m.String(), func(t *testing.T) {
				ctx := t.Context()
				db := e.pool(t, "app", 1)
				st := e.store(t, db, m)
				tok, before := e.seed(t, st, old)
				s, err := st.Load(ctx, tok)
				if err != nil || s.Locked() != (m == session.Locked) {
					t.Fatalf("load: locked=%v %v", s.Locked(), err)
				}
				if m == session.Locked {
					e.kill(t, e.waitBackends(t, 1, "app", "transaction", nil))
					if err = st.Renew(ctx, s); err == nil {
						t.Fatal("renew succeeded on a connection the server had killed")
					}
					t.Logf("renew of a locked session whose connection was killed: %v", err)
				} else {
					err = killWaiting(t, "renew", func() error { return st.Renew(ctx, s) })
				}
				faultNoneInUse(t, db)
				switch oldRow := e.row(t, db, tok); {
				case err == nil:
					if oldRow.found || s.Token() == tok {
						t.Fatalf("renew succeeded, yet the old key is still stored (%v) or kept", oldRow)
					}
				case !oldRow.equal(before):
					t.Fatalf("renew failed (%v), row %v, want it untouched: %v", err, oldRow, before)
				case s.Token() != tok:
					t.Fatalf("renew failed (%v), yet the session has a new token", err)
				default:
					if err := st.Renew(ctx, s); err != nil {
						t.Fatalf("second renew after the kill: %v", err)
					}
				}
				if got := e.row(t, db, s.Token()); !got.equal(before.next(old)) {
					t.Fatalf("row under the new token: %v, want %v", got, before.next(old))
				}
				faultNoneInUse(t, db)
			})
		}

		faultNoLeaks(t, "destroy", func(t *testing.T) {
			ctx := t.Context()
			db := e.pool(t, "app", 1)
			st := e.store(t, db, session.Merge)
			tok, before := e.seed(t, st, old)
			s, err := st.Load(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			err = killWaiting(t, "destroy", func() error { return st.Destroy(ctx, s) })
			faultNoneInUse(t, db)
			live, lerr := st.Load(ctx, tok)
			if lerr != nil {
				t.Fatalf("load after the kill: %v", lerr)
			}
			switch {
			case err == nil && !live.IsNew():
				t.Fatal("destroy succeeded, yet the session still loads")
			case err != nil && (live.IsNew() || !e.row(t, db, tok).equal(before)):
				t.Fatalf("destroy failed (%v), yet the session changed: new=%v row %v", err, live.IsNew(), e.row(t, db, tok))
			case err != nil:
				if err := st.Destroy(ctx, live); err != nil {
					t.Fatalf("second destroy after the kill: %v", err)
				}
				if again, err := st.Load(ctx, tok); err != nil || !again.IsNew() {
					t.Fatalf("the session still loads after the second destroy: %v", err)
				}
			}
			faultNoneInUse(t, db)
		})
	})
}

// TestFaultServerRestart kills every connection to the database while
// pools hold idle connections, a Locked-mode session holds its
// transaction and a merge-mode session has unsaved changes: a stand-in for
// a restart of the database server, as the pools see one. The locked
// session's save fails and writes nothing; every other save is whole or
// absent; each pool works again after at most one failure per connection
// it held (a pooled connection learns that the server closed it only when
// it is next used, and database/sql retries on a new connection only when
// the driver knows that nothing was sent); nothing leaks.
func TestFaultServerRestart(t *testing.T) {
	faultEach(t, []string{"postgres", "mysql"}, func(t *testing.T, tg *testdb.Target) {
		e := newFaultDB(t, tg)
		faultNoLeaks(t, "restart", func(t *testing.T) {
			ctx := t.Context() // its end rolls back a lock a failed check left held
			const open = 4
			mergeDB, lockedDB := e.pool(t, "app", open), e.pool(t, "app", 2)
			merge, locked := e.store(t, mergeDB, session.Merge), e.store(t, lockedDB, session.Locked)
			tok, before := e.seed(t, merge, map[string]any{"v": "old"})
			lockedTok, lockedBefore := e.seed(t, locked, map[string]any{"v": "old"})

			// Fill the merge pool with idle connections.
			conns := make([]*sql.Conn, open)
			for i := range conns {
				c, err := mergeDB.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				conns[i] = c
			}
			for _, c := range conns {
				c.Close()
			}
			pending, err := merge.Load(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			pending.Set("v", "pending")
			held, err := locked.Load(ctx, lockedTok)
			if err != nil || !held.Locked() {
				t.Fatalf("locked load: %v", err)
			}
			held.Set("v", "held")

			t.Logf("restart: %d connections killed", e.restart(t))
			check := e.pool(t, "check", 1) // opened after the restart

			if err := locked.Save(ctx, held); err == nil {
				t.Fatal("the locked session's save succeeded although the server ended its transaction")
			} else {
				t.Logf("locked save after the restart: %v", err)
			}
			if got := e.row(t, check, lockedTok); !got.equal(lockedBefore) {
				t.Fatalf("locked row after the restart: %v, want it untouched: %v", got, lockedBefore)
			}

			// The pending merge save, then more requests: each save is
			// whole or absent, and failures stop once the dead connections
			// are gone.
			failures := 0
			failed := func(what string, err error) {
				t.Helper()
				failures++
				t.Logf("%s after the restart: %v", what, err)
				if failures > open {
					t.Fatalf("%d failures after the restart, more than the %d connections the pool held", failures, open)
				}
			}
			cur, s, want := before, pending, map[string]any{"v": "pending"}
			for i, saved := 0, 0; saved < 2*open; i++ {
				err := merge.Save(ctx, s)
				got := e.row(t, check, tok)
				switch {
				case err == nil && !got.equal(cur.next(want)):
					t.Fatalf("save succeeded, row %v, want %v", got, cur.next(want))
				case err != nil && !got.equal(cur) && !got.equal(cur.next(want)):
					t.Fatalf("save failed (%v), row %v is neither %v nor %v", err, got, cur, cur.next(want))
				case err != nil:
					failed("merge save", err)
				default:
					saved++
				}
				cur = got
				for {
					if s, err = merge.Load(ctx, tok); err == nil {
						break
					}
					failed("merge load", err)
				}
				want = map[string]any{"v": fmt.Sprintf("request %d", i)}
				s.Set("v", want["v"])
			}
			lockedWant := lockedBefore.next(map[string]any{"v": "locked after"})
			for range 3 { // the locked pool held two connections
				s, err := locked.Load(ctx, lockedTok)
				if err != nil {
					t.Logf("locked load after the restart: %v", err)
					continue
				}
				s.Set("v", "locked after")
				if err := locked.Save(ctx, s); err != nil {
					t.Logf("locked save after the restart: %v", err)
					continue
				}
				break
			}
			if got := e.row(t, check, lockedTok); !got.equal(lockedWant) {
				t.Fatalf("the locked pool does not work after the restart: row %v, want %v", got, lockedWant)
			}
			faultNoneInUse(t, mergeDB)
			faultNoneInUse(t, lockedDB)
		})
	})
}

// TestFaultContextCancelled cancels the context of a request (load, set,
// save) at a random moment, mostly during the save, faultCancelTrials
// times per concurrency mode,
// on a pool of one connection: a cancelled save leaves the old row or the
// new one whole, a save that reported success is stored, the connection
// always goes back to the pool, and the pool serves the next request.
// TestStressFaultContextCancelled runs faultCancelStressTrials.
func TestFaultContextCancelled(t *testing.T) { faultContextCancelled(t, faultCancelTrials) }

func TestStressFaultContextCancelled(t *testing.T) {
	if os.Getenv("VISITSESSION_STRESS") != "1" {
		t.Skip("set VISITSESSION_STRESS=1 to run (make test-stress)")
	}
	faultContextCancelled(t, faultCancelStressTrials)
}

func faultContextCancelled(t *testing.T, trials int) {
	faultEach(t, testdb.Kinds, func(t *testing.T, tg *testdb.Target) {
		e := newFaultDB(t, tg)
		for _, m := range everyMode {
			faultNoLeaks(t, m.String(), func(t *testing.T) {
				ctx := t.Context()
				db := e.pool(t, "app", 1)
				check := e.pool(t, "check", 1)
				st := e.store(t, db, m)
				tok, cur := e.seed(t, st, map[string]any{"i": -1})

				// request loads the session under ctx, replaces its values
				// and saves it, calling beforeSave between load and save.
				request := func(ctx context.Context, values map[string]any, beforeSave func()) (loadErr, saveErr error) {
					s, err := st.Load(ctx, tok)
					if err != nil {
						return err, nil
					}
					defer st.Release(context.WithoutCancel(ctx), s)
					if s.IsNew() {
						return errors.New("the session is gone"), nil
					}
					s.Clear()
					for k, v := range values {
						s.Set(k, v)
					}
					beforeSave()
					return nil, st.Save(ctx, s)
				}
				values := func(i int) map[string]any {
					return map[string]any{"i": i, "pad": strings.Repeat(string(rune('a'+i%26)), 100+i%400)}
				}

				// How long uncancelled requests and their saves take sets
				// the ranges of the cancellation moments.
				var took, saves []time.Duration
				for i := range 7 {
					var saveStart time.Time
					start := time.Now()
					if lerr, serr := request(ctx, values(-2-i), func() { saveStart = time.Now() }); lerr != nil || serr != nil {
						t.Fatalf("uncancelled request: %v %v", lerr, serr)
					}
					took = append(took, time.Since(start))
					saves = append(saves, time.Since(saveStart))
					cur = cur.next(values(-2 - i))
				}
				slices.Sort(took)
				slices.Sort(saves)
				span, saveSpan := 2*took[len(took)/2], 2*saves[len(saves)/2]

				outcomes := map[string]int{}
				odd := map[string]int{}
				for i := range trials {
					// Every fourth request is cancelled at a random moment
					// of its whole run, the others at one of their save. (A
					// connection closed by a cancellation makes the next
					// load open a new one, which takes longer than a save.)
					want := values(i)
					rctx, cancel := context.WithCancel(ctx)
					var timer *time.Timer
					if i%4 == 0 {
						timer = time.AfterFunc(rand.N(span), cancel)
					}
					lerr, serr := request(rctx, want, func() {
						if timer == nil {
							timer = time.AfterFunc(rand.N(saveSpan), cancel)
						}
					})
					if timer != nil {
						timer.Stop()
					}
					cancel()

					faultNoneInUse(t, db)
					if lerr != nil || serr != nil {
						e.settle(t, db, check)
					}
					got := e.row(t, check, tok)
					switch {
					case lerr != nil:
						outcomes["load failed"]++
						if !got.equal(cur) {
							t.Fatalf("trial %d: the load failed (%v), yet the row changed: %v, was %v", i, lerr, got, cur)
						}
					case serr == nil:
						outcomes["saved"]++
						if !got.equal(cur.next(want)) {
							t.Fatalf("trial %d: the save succeeded, row %v, want %v", i, got, cur.next(want))
						}
					case got.equal(cur):
						outcomes["save failed, nothing written"]++
					case got.equal(cur.next(want)):
						outcomes["save failed after it was written"]++
					default:
						t.Fatalf("trial %d: the save failed (%v) and left row %v, neither the old %v nor the new %v", i, serr, got, cur, cur.next(want))
					}
					for _, err := range []error{lerr, serr} {
						if err != nil && !errors.Is(err, context.Canceled) {
							odd[err.Error()]++
						}
					}
					cur = got
					if t.Failed() {
						return
					}
				}
				t.Logf("%d trials, cancelled within %v of the request or %v of the save: %v", trials, span, saveSpan, outcomes)
				if len(odd) > 0 {
					msgs := make([]string, 0, len(odd))
					for msg, n := range odd {
						msgs = append(msgs, fmt.Sprintf("%dx %s", n, msg))
					}
					slices.Sort(msgs)
					t.Errorf("errors of cancelled requests that do not wrap context.Canceled:\n%s", strings.Join(msgs, "\n"))
				}
				want := values(trials)
				if lerr, serr := request(ctx, want, func() {}); lerr != nil || serr != nil {
					t.Fatalf("request after the cancelled ones: %v %v", lerr, serr)
				}
				if got := e.row(t, check, tok); !got.equal(cur.next(want)) {
					t.Fatalf("row after the last request: %v, want %v", got, cur.next(want))
				}
				faultNoneInUse(t, db)
			})
		}
	})
}
