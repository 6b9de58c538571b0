package dialect_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"modernc.org/sqlite"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

// TestSQLiteTakeLockTakesWriteLock holds SQLite's TakeLock to what the
// locked mode needs of it: run first in a database/sql transaction, it
// takes the database's write lock, as BEGIN IMMEDIATE does, so that another
// connection can neither write nor open a write transaction until it ends,
// while reads go on; and it changes no row.
func TestSQLiteTakeLockTakesWriteLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lock.db")
	// A short busy timeout: the waits below are meant to fail.
	dsn := strings.Replace(dialect.SQLiteFileDSN(path), "busy_timeout(10000)", "busy_timeout(50)", 1)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tab := visit.Default()
	if _, err := visit.Migrate(ctx, db, dialect.SQLite(), tab); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO visit (visit_key, session_data, created, expiry, version) VALUES ('k', x'00', 1, 2, 7)`); err != nil {
		t.Fatal(err)
	}
	stmts, err := dialect.SQLite().Statements(tab)
	if err != nil || stmts.TakeLock == "" {
		t.Fatalf("SQLite has no TakeLock: %v", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tx.ExecContext(ctx, stmts.TakeLock)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 0 {
		t.Fatalf("TakeLock changed %d rows", n)
	}

	busy := func(what string, run func(c *sql.Conn) error) {
		t.Helper()
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = run(c)
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != 5 {
			t.Fatalf("%s beside a transaction that ran TakeLock: %v, want SQLITE_BUSY", what, err)
		}
	}
	busy("BEGIN IMMEDIATE", func(c *sql.Conn) error {
		_, err := c.ExecContext(ctx, "BEGIN IMMEDIATE")
		return err
	})
	busy("an UPDATE", func(c *sql.Conn) error {
		_, err := c.ExecContext(ctx, `UPDATE visit SET version = 8 WHERE visit_key = 'k'`)
		return err
	})
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := c.QueryRowContext(ctx, `SELECT version FROM visit WHERE visit_key = 'k'`).Scan(&v); err != nil || v != 7 {
		t.Fatalf("a read beside the lock: %d, %v", v, err)
	}
	c.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE visit SET version = 8 WHERE visit_key = 'k'`); err != nil {
		t.Fatalf("an UPDATE once the transaction ended: %v", err)
	}
}
