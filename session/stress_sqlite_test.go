package session_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
)

// TestSQLiteWriters runs 16 writers × 5 saves; TestStressSQLiteWriters
// runs 16 × 500.
func TestSQLiteWriters(t *testing.T) { sqliteWriters(t, 16, 5) }

// TestStressSQLiteWriters is TestSQLiteWriters with 500 saves per writer.
func TestStressSQLiteWriters(t *testing.T) {
	needStress(t)
	sqliteWriters(t, 16, 500)
}

// sqliteWriters has writers goroutines, spread over four pools as over
// four processes, each load and save saves sessions on one SQLite file
// (the DSN sets WAL and busy_timeout): every four writers share one
// session and set keys of their own in it, in each mode. No save may fail,
// and none may see "database is locked" (SQLITE_BUSY), which the engine
// would otherwise have had to retry: Stats.Retries is logged.
func sqliteWriters(t *testing.T, writers, saves int) {
	tg := testdb.Get(t, "sqlite")
	for _, m := range modes {
		if m.mode == session.LastWriteWins {
			continue // loses changes by design; TestConcurrentDisjointKeys covers it
		}
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			tab := tg.CreateTable(t)
			pools := make([]*sql.DB, 4)
			stores := make([]*session.Store, len(pools))
			for i := range pools {
				pools[i] = tg.Open(t)
				stores[i] = openOn(t, pools[i], tg, tab, session.WithMode(m.mode), session.WithLockTimeout(time.Minute))
			}
			tokens := make([]string, (writers+3)/4)
			for i := range tokens {
				tokens[i] = seed(t, stores[0], map[string]any{"session": i})
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failures []error
			start := time.Now()
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, tok := stores[w%len(stores)], tokens[w/4]
					for i := range saves {
						s, err := st.Load(ctx, tok)
						if err == nil {
							s.Set(fmt.Sprintf("writer%02d", w), i)
							err = st.Save(ctx, s)
						}
						if err != nil {
							mu.Lock()
							failures = append(failures, fmt.Errorf("writer %d, save %d: %w", w, i, err))
							mu.Unlock()
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			locked := 0
			for _, err := range failures {
				if dialect.SQLite().Classify(err) == dialect.Retryable || strings.Contains(err.Error(), "database is locked") {
					locked++
				}
				t.Error(err)
			}
			if locked > 0 {
				t.Fatalf("%d saves failed with database is locked", locked)
			}
			for i, tok := range tokens {
				got := read(t, stores[0], tok)
				for w := i * 4; w < min(i*4+4, writers); w++ {
					if v := got[fmt.Sprintf("writer%02d", w)]; v != saves-1 {
						t.Errorf("session %d: writer%02d = %v, want %d", i, w, v, saves-1)
					}
				}
			}
			stats := sumStats(stores...)
			total := writers * saves
			t.Logf("%s/sqlite: %d writers × %d saves in %v (%.0f saves/s): %d conflicts (%.3f per save), %d retries, %d lock timeouts",
				m.name, writers, saves, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(),
				stats.Conflicts, float64(stats.Conflicts)/float64(total), stats.Retries, stats.LockTimeouts)
			if stats.Retries != 0 {
				t.Errorf("%d statements hit SQLITE_BUSY and had to be retried", stats.Retries)
			}
			noneInUse(t, pools...)
		})
	}
}
