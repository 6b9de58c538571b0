package peer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Instance is one session library, configured and started on a
// database: its table exists and its middleware serves the two routes of
// the workload.
type Instance interface {
	// CookieName is the name of the session cookie.
	CookieName() string
	// Handler serves, through the library's own middleware, GET /read
	// (answers the session's "user_id") and POST /write (sets
	// "cart_items", answers "ok").
	Handler() http.Handler
	// Create stores session i, holding the values of SessionValues(i),
	// and returns its cookie value. age asks for a session last used that
	// long ago; libraries that cannot backdate a session ignore it. Create
	// is safe for concurrent use.
	Create(ctx context.Context, i int, age time.Duration) (string, error)
	// Mark starts the measured phase: Notes reports from here.
	Mark()
	// Notes returns what the library itself counted since Mark, or "".
	Notes() string
	// Conflicts counts, since Mark, the write statements of write
	// requests that changed no row because a concurrent save of the same
	// session came first, and were run again (visitsession's merge mode).
	Conflicts() uint64
	// MiddlewareErrors counts the errors the middleware reported since
	// the start, and returns the first.
	MiddlewareErrors() (n uint64, first string)
	// Close stops the library and drops its table.
	Close(ctx context.Context) error
}

// Contender names a library configuration and starts it.
type Contender struct {
	// Name is the short name used by the -libs flag.
	Name string
	// Title is the name shown in the results.
	Title string
	// Start creates the library's table in db and returns the instance.
	Start func(ctx context.Context, db *Database) (Instance, error)
}

// IdleTimeout and Lifetime are the session lifetimes every contender
// uses: visitsession's defaults (idle timeout 2h, absolute timeout 24h),
// which are also scs's default Lifetime.
const (
	IdleTimeout = 2 * time.Hour
	Lifetime    = 24 * time.Hour
)

// Contenders returns the configurations compared, in report order.
func Contenders() []Contender {
	return []Contender{
		{Name: "visitsession", Title: "visitsession (merge, defaults)", Start: startVisitsession},
		{Name: "scs-idle", Title: "scs, IdleTimeout 2h", Start: func(ctx context.Context, db *Database) (Instance, error) {
			return startSCS(ctx, db, IdleTimeout)
		}},
		{Name: "scs", Title: "scs, no IdleTimeout", Start: func(ctx context.Context, db *Database) (Instance, error) {
			return startSCS(ctx, db, 0)
		}},
	}
}

// SessionValues returns the ten values of session i: a typical logged-in
// session, the same for every library. user_id is i+1.
func SessionValues(i int) map[string]any {
	return map[string]any{
		"user_id":    int64(i + 1),
		"name":       "Ada Lovelace",
		"roles":      []string{"admin", "editor", "viewer"},
		"login_at":   time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		"mfa":        true,
		"score":      98.6,
		"lang":       "en-GB",
		"theme":      "dark",
		"csrf":       "k2Jd9sL0qPzX8vB3nM5tY7wQ1eR4uI6o",
		"cart_items": 3,
	}
}

// routes returns the workload's two routes over a library's accessors:
// userID reads "user_id" from the request's session, setCart writes
// "cart_items".
func routes(userID func(r *http.Request) int64, setCart func(r *http.Request, n int)) *http.ServeMux {
	var writes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /read", func(w http.ResponseWriter, r *http.Request) {
		id := userID(r)
		if id == 0 {
			http.Error(w, "session has no user_id", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, strconv.FormatInt(id, 10))
	})
	mux.HandleFunc("POST /write", func(w http.ResponseWriter, r *http.Request) {
		setCart(r, int(writes.Add(1)))
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	})
	return mux
}

// errorCounter is a middleware error handler that counts errors, keeps
// the first, and answers 500.
type errorCounter struct {
	n     atomic.Uint64
	first atomic.Pointer[string]
}

func (e *errorCounter) get() (uint64, string) {
	if p := e.first.Load(); p != nil {
		return e.n.Load(), *p
	}
	return e.n.Load(), ""
}

func (e *errorCounter) handle(w http.ResponseWriter, _ *http.Request, err error) {
	e.n.Add(1)
	msg := err.Error()
	e.first.CompareAndSwap(nil, &msg)
	http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
}

// execAll runs DDL statements in order.
func execAll(ctx context.Context, db *Database, stmts ...string) error {
	for _, s := range stmts {
		if _, err := db.DB.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("create table: %w", err)
		}
	}
	return nil
}
