package sweeper_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers "sqlite"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/sweeper"
	"github.com/visitsession/visitsession/visit"
)

// A one-off sweep, as a cron job would run it: three visits expired an
// hour ago and one is live. The first sweep keeps the expired rows but
// clears their data (TurboGears' policy); the second, with a retention of
// 30 minutes, deletes them.
func ExampleSweeper_SweepOnce() {
	dir, err := os.MkdirTemp("", "sweeper-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", dialect.SQLiteFileDSN(filepath.Join(dir, "app.db")))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	ctx := context.Background()
	d, t := dialect.SQLite(), visit.Default()
	if _, err := visit.Migrate(ctx, db, d, t); err != nil {
		fmt.Println(err)
		return
	}
	st, err := d.Statements(t)
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i, expiry := range []time.Time{now.Add(-time.Hour), now.Add(-time.Hour), now.Add(-time.Hour), now.Add(time.Hour)} {
		key := visit.HashToken(visit.NewToken())
		if _, err := db.ExecContext(ctx, st.Insert, key, []byte(fmt.Sprint("visit ", i)),
			d.EncodeTime(expiry.Add(-time.Hour)), d.EncodeTime(expiry)); err != nil {
			fmt.Println(err)
			return
		}
	}

	quiet := slog.New(slog.DiscardHandler)
	clearing, err := sweeper.New(db, d, t, sweeper.Options{ClearData: true, DeleteAfter: sweeper.Never, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := clearing.SweepOnce(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("cleared %d, deleted %d\n", rep.Cleared, rep.Deleted)

	purge, err := sweeper.New(db, d, t, sweeper.Options{DeleteAfter: 30 * time.Minute, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err = purge.SweepOnce(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("cleared %d, deleted %d\n", rep.Cleared, rep.Deleted)
	// Output:
	// cleared 3, deleted 0
	// cleared 0, deleted 3
}
