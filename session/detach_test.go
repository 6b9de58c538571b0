package session_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// watchedContext is a context that can be cancelled and counts the calls
// of its Done: whatever watches it for cancellation — database/sql, a
// driver, context.WithCancel or AfterFunc on it — calls Done.
type watchedContext struct {
	context.Context
	dones atomic.Int32
}

func (c *watchedContext) Done() <-chan struct{} {
	c.dones.Add(1)
	return c.Context.Done()
}

// watched returns a watchedContext, cancelled at the end of the test.
func watched(t *testing.T) *watchedContext {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &watchedContext{Context: ctx}
}

// TestReadsDetach checks which loads run detached from their context's
// cancellation (dialect.Dialect.DetachReads): on SQLite in WAL mode
// nothing but the store's own look at Done (one call, to see that there
// is a cancellation to detach from) watches the context; on PostgreSQL,
// MariaDB and SQLite in rollback-journal mode, where a read may wait,
// database/sql and the driver watch it. Either way the load reads the
// session, and a context already cancelled gives its error and runs no
// statement.
func TestReadsDetach(t *testing.T) {
	check := func(t *testing.T, db *sql.DB, d dialect.Dialect, tab visit.Table, detached bool) {
		ctx := context.Background()
		st, err := session.Open(ctx, db, d, session.WithTable(tab))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		s := st.New()
		s.Set("n", 7)
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}

		wctx := watched(t)
		got, err := st.Load(wctx, s.Token())
		if err != nil || got.GetInt("n") != 7 {
			t.Fatalf("load: %v, n = %d", err, got.GetInt("n"))
		}
		if n := wctx.dones.Load(); detached && n > 1 {
			t.Errorf("a detached load looked at Done %d times: something watches its context", n)
		} else if !detached && n < 2 {
			t.Errorf("a load that may wait looked at Done %d times: nothing watches its context", n)
		}

		cctx, cancel := context.WithCancel(ctx)
		cancel()
		loads := st.Stats().Loads
		if _, err := st.Load(cctx, s.Token()); !errors.Is(err, context.Canceled) {
			t.Fatalf("load under a cancelled context: %v", err)
		}
		if detached && st.Stats().Loads != loads {
			t.Errorf("a load under a cancelled context ran its statement")
		}
	}
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		check(t, tg.DB, tg.Dialect, tg.CreateTable(t), tg.Kind == "sqlite")
	})
	t.Run("sqlite-rollback-journal", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "journal.db")
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(DELETE)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		tab := visit.Default()
		if _, err := visit.Migrate(context.Background(), db, dialect.SQLite(), tab); err != nil {
			t.Fatal(err)
		}
		check(t, db, dialect.SQLite(), tab, false)
	})
}
