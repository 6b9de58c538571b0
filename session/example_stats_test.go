package session_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	_ "modernc.org/sqlite" // registers "sqlite"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// statsStore is the store whose counters the expvar "visitsession" shows.
// An expvar name can be published only once per process, and an example
// may run more than once (go test -count=2), so the published function
// reads the current store from here.
var statsStore atomic.Pointer[session.Store]

// publishStats publishes the counters of statsStore as the expvar
// "visitsession", served as JSON at /debug/vars by expvar.Handler (and by
// http.DefaultServeMux once expvar is imported).
var publishStats = sync.OnceFunc(func() {
	expvar.Publish("visitsession", expvar.Func(func() any { return statsStore.Load().Stats() }))
})

// The store's counters go to expvar for a monitoring system to scrape;
// hooks and the logger report single events. Here two requests of one
// visitor change different keys at once (the second save conflicts,
// reloads and merges), and then the stored data is damaged.
func ExampleStore_Stats() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "visitsession-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", dialect.SQLiteFileDSN(filepath.Join(dir, "app.db")))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := visit.Migrate(ctx, db, dialect.SQLite(), visit.Default()); err != nil {
		log.Fatal(err)
	}

	// Warnings as text lines, without the time so that the output below
	// stays the same.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
	store, err := session.Open(ctx, db, dialect.SQLite(),
		session.WithLogger(logger),
		session.WithHooks(session.Hooks{
			OnConflict:    func(attempt int) { fmt.Println("hook: conflict, attempt", attempt) },
			OnDecodeError: func(err error) { fmt.Println("hook: decode error:", errors.Is(err, session.ErrCorrupt)) },
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	statsStore.Store(store)
	publishStats()

	s := store.New()
	s.Set("lang", "de")
	if err := store.Save(ctx, s); err != nil {
		log.Fatal(err)
	}
	a, err := store.Load(ctx, s.Token())
	if err != nil {
		log.Fatal(err)
	}
	b, err := store.Load(ctx, s.Token())
	if err != nil {
		log.Fatal(err)
	}
	a.Set("theme", "dark")
	b.Set("cart", 3)
	if err := store.Save(ctx, a); err != nil {
		log.Fatal(err)
	}
	if err := store.Save(ctx, b); err != nil { // conflicts, reloads, merges
		log.Fatal(err)
	}

	if _, err := db.ExecContext(ctx, "UPDATE visit SET session_data = x'ff'"); err != nil {
		log.Fatal(err)
	}
	if _, err := store.Load(ctx, s.Token()); errors.Is(err, session.ErrCorrupt) {
		fmt.Println("load: stored data is corrupt")
	}

	// What a scraper of /debug/vars gets.
	rec := httptest.NewRecorder()
	expvar.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/vars", nil))
	var vars struct {
		Sessions session.Stats `json:"visitsession"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &vars); err != nil {
		log.Fatal(err)
	}
	st := vars.Sessions
	fmt.Printf("loads=%d inserts=%d updates=%d conflicts=%d decode_errors=%d\n",
		st.Loads, st.Inserts, st.Updates, st.Conflicts, st.DecodeErrors)
	// Output:
	// hook: conflict, attempt 1
	// hook: decode error: true
	// level=WARN msg="session: stored session data does not decode" table=visit error="codec: corrupt session data: unknown format version 0xff"
	// load: stored data is corrupt
	// loads=4 inserts=1 updates=2 conflicts=1 decode_errors=1
}
