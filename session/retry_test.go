package session_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// impatientPool returns a pool on tg's database whose connections give up
// waiting for a row lock (or, on SQLite, the write lock) at once or after
// a few milliseconds, with the database's retryable error: 55P03 on
// PostgreSQL (lock_timeout), 1205 on MySQL and MariaDB
// (innodb_lock_wait_timeout), SQLITE_BUSY on SQLite (busy_timeout).
func impatientPool(t *testing.T, tg *testdb.Target) *sql.DB {
	t.Helper()
	var dsns []string
	switch tg.Kind {
	case "postgres":
		dsns = []string{tg.DSN + "&lock_timeout=20"}
	case "mysql":
		cfg, err := mysql.ParseDSN(tg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		for _, wait := range []string{"0", "1"} { // MariaDB takes 0 (no wait), MySQL 1 second at least
			c := cfg.Clone()
			if c.Params == nil {
				c.Params = map[string]string{}
			}
			c.Params["innodb_lock_wait_timeout"] = wait
			dsns = append(dsns, c.FormatDSN())
		}
	case "sqlite":
		dsns = []string{strings.Replace(tg.DSN, "busy_timeout(10000)", "busy_timeout(0)", 1)}
	}
	for _, dsn := range dsns {
		db, err := sql.Open(tg.Driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Ping(); err != nil {
			db.Close()
			continue
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	t.Fatalf("no impatient pool on %s", tg.Kind)
	return nil
}

// rowLock holds the lock a write of the session needs: the row lock on
// PostgreSQL and MySQL, the database's write lock on SQLite.
type rowLock struct {
	once    sync.Once
	release func()
}

// lockRow takes the lock that a write of key needs, on tg's shared pool,
// and returns it; Unlock releases it, and the end of the test does too.
func lockRow(t *testing.T, tg *testdb.Target, tab visit.Table, key string) *rowLock {
	t.Helper()
	ctx := context.Background()
	l := &rowLock{}
	if tg.Kind == "sqlite" {
		conn, err := tg.DB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		l.release = func() {
			_, _ = conn.ExecContext(ctx, "ROLLBACK")
			conn.Close()
		}
	} else {
		tx, err := tg.DB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		q := "SELECT " + tg.Dialect.Quote(tab.Version) + " FROM " + tg.Dialect.Quote(tab.Name) +
			" WHERE " + tg.Dialect.Quote(tab.Key) + " = " + map[string]string{"postgres": "$1", "mysql": "?"}[tg.Kind] + " FOR UPDATE"
		var v int64
		if err := tx.QueryRowContext(ctx, q, key).Scan(&v); err != nil {
			t.Fatal(err)
		}
		l.release = func() { _ = tx.Rollback() }
	}
	t.Cleanup(l.Unlock)
	return l
}

// Unlock releases the lock, once.
func (l *rowLock) Unlock() { l.once.Do(l.release) }

// retryCounter counts the OnRetry hook's calls per operation, and calls
// then, when set, at the first.
type retryCounter struct {
	mu   sync.Mutex
	ops  map[string]int
	then func()
}

func (c *retryCounter) hook(op string, _ error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops == nil {
		c.ops = map[string]int{}
	}
	c.ops[op]++
	if c.then != nil {
		c.then()
		c.then = nil
	}
}

func (c *retryCounter) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops[op]
}

// TestRetryWaitsOutALock saves while another transaction holds the lock
// the save needs, on a pool that does not wait for locks: the attempt fails
// with the database's retryable error, and the save goes through, retried
// with backoff, once the lock is released (at the first retry).
func TestRetryWaitsOutALock(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		var retries retryCounter
		st := openOn(t, impatientPool(t, tg), tg, tab, session.WithMaxRetries(20), session.WithHooks(session.Hooks{OnRetry: retries.hook}))
		tok := seed(t, st, map[string]any{"a": 1})
		s, err := st.Load(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		retries.then = lockRow(t, tg, tab, visit.HashToken(tok)).Unlock
		s.Set("b", 2)
		if err := st.Save(ctx, s); err != nil {
			t.Fatalf("Save: %v", err)
		}
		got := st.Stats()
		if got.Retries == 0 || got.Retries != uint64(retries.get("save")) || got.Updates != 1 {
			t.Fatalf("stats %+v, OnRetry(save) calls %d: want retries, each reported", got, retries.get("save"))
		}
		t.Logf("%s: %d retries", tg.Kind, got.Retries)
		if v := read(t, st, tok); v["a"] != 1 || v["b"] != 2 {
			t.Fatalf("values %v", v)
		}
	})
}

// TestRetriesGiveUp saves while the lock stays held: after 1+3 attempts
// the save fails with the database's own error, wrapped once, still
// classified retryable, and naming neither token nor key.
func TestRetriesGiveUp(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		st := openOn(t, impatientPool(t, tg), tg, tab, session.WithMaxRetries(3))
		tok := seed(t, st, map[string]any{"a": 1})
		s, err := st.Load(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		lockRow(t, tg, tab, visit.HashToken(tok))
		s.Set("b", 2)
		err = st.Save(ctx, s)
		if err == nil || tg.Dialect.Classify(err) != dialect.Retryable || !strings.HasPrefix(err.Error(), "session: save: ") {
			t.Fatalf("Save: %v, want the database's retryable error", err)
		}
		if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), visit.HashToken(tok)) {
			t.Fatalf("error names the token or key: %v", err)
		}
		if got := st.Stats(); got.Retries != 3 || got.Updates != 0 {
			t.Fatalf("stats %+v, want 3 retries", got)
		}
	})
}

// TestRetriesStopAtContextDeadline saves while the lock stays held, with
// a retry budget far beyond what fits in the context's 150ms: the save
// stops when the deadline comes, instead of sleeping past it.
func TestRetriesStopAtContextDeadline(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		tab := tg.CreateTable(t)
		st := openOn(t, impatientPool(t, tg), tg, tab, session.WithMaxRetries(10000))
		tok := seed(t, st, map[string]any{"a": 1})
		s, err := st.Load(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		lockRow(t, tg, tab, visit.HashToken(tok))
		s.Set("b", 2)
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = st.Save(ctx, s)
		elapsed := time.Since(start)
		if err == nil {
			t.Fatal("Save succeeded under a held lock")
		}
		if retries := st.Stats().Retries; retries == 0 || retries >= 10000 {
			t.Fatalf("%d retries", retries)
		}
		// Generous for a loaded machine: without the deadline check the
		// budget of retries would run for minutes.
		if elapsed > 5*time.Second {
			t.Fatalf("Save returned after %v with a 150ms deadline", elapsed)
		}
	})
}

// TestLockedLoadRetriesWithinLockTimeout takes the row lock in Locked mode
// while another transaction holds it, on a pool that does not wait for
// locks: the lock is retried until the holder lets go (at the first
// retry), and when the holder does not, the whole wait, retries included,
// ends at the lock timeout with ErrLockTimeout.
func TestLockedLoadRetriesWithinLockTimeout(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		db := impatientPool(t, tg)
		var retries retryCounter
		st := openOn(t, db, tg, tab, session.WithMode(session.Locked), session.WithLockTimeout(400*time.Millisecond),
			session.WithMaxRetries(1000), session.WithHooks(session.Hooks{OnRetry: retries.hook}))
		tok := seed(t, st, map[string]any{"n": 1})

		retries.then = lockRow(t, tg, tab, visit.HashToken(tok)).Unlock
		s, err := st.Load(ctx, tok)
		if err != nil || !s.Locked() {
			t.Fatalf("Load: locked=%v %v", s.Locked(), err)
		}
		st.Release(ctx, s)
		if retries.get("load locked") == 0 {
			t.Fatal("the lock was not retried")
		}

		lockRow(t, tg, tab, visit.HashToken(tok))
		start := time.Now()
		_, err = st.Load(ctx, tok)
		elapsed := time.Since(start)
		if !errors.Is(err, session.ErrLockTimeout) {
			t.Fatalf("Load under a held lock: %v, want ErrLockTimeout", err)
		}
		if got := st.Stats().LockTimeouts; got != 1 {
			t.Fatalf("lock timeouts %d", got)
		}
		if elapsed > 5*time.Second {
			t.Fatalf("gave up after %v with a 400ms lock timeout", elapsed)
		}
		noneInUse(t, db)
	})
}
