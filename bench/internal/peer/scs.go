package peer

import (
	"context"
	"encoding/gob"
	"fmt"
	"net/http"
	"time"

	"github.com/alexedwards/scs/mysqlstore"
	"github.com/alexedwards/scs/postgresstore"
	"github.com/alexedwards/scs/sqlite3store"
	"github.com/alexedwards/scs/v2"
)

func init() {
	// scs's default codec is encoding/gob, which needs the concrete types
	// of interface values registered; time.Time is the only one in
	// SessionValues that gob does not register itself.
	gob.Register(time.Time{})
}

// scsTables holds each store's table, as its README gives it.
var scsTables = map[string][]string{
	"postgres": {
		"CREATE TABLE sessions (token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL)",
		"CREATE INDEX sessions_expiry_idx ON sessions (expiry)",
	},
	"mysql": {
		"CREATE TABLE sessions (token CHAR(43) PRIMARY KEY, data BLOB NOT NULL, expiry TIMESTAMP(6) NOT NULL)",
		"CREATE INDEX sessions_expiry_idx ON sessions (expiry)",
	},
	"sqlite": {
		"CREATE TABLE sessions (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL)",
		"CREATE INDEX sessions_expiry_idx ON sessions(expiry)",
	},
}

// scsInstance is scs v2 with its defaults (gob codec, Lifetime 24h,
// cookie "session") and the store for the database, without the store's
// background cleanup (visitsession runs no sweeper either). With
// IdleTimeout set, scs marks every loaded session modified, so every
// request commits it; without, it writes only changed sessions and never
// extends one.
//
// mysqlstore's table name is fixed ("sessions"), so both scs instances on
// a database share the table, each with its own sessions: the first
// creates it, the last drops it.
type scsInstance struct {
	db      *Database
	sm      *scs.SessionManager
	handler http.Handler
	errs    errorCounter
}

func startSCS(ctx context.Context, db *Database, idle time.Duration) (Instance, error) {
	ddl, ok := scsTables[db.Kind]
	if !ok {
		return nil, fmt.Errorf("scs: no store for %s", db.Kind)
	}
	if db.acquire("sessions") {
		if err := execAll(ctx, db, ddl...); err != nil {
			db.release("sessions")
			return nil, fmt.Errorf("scs: %w", err)
		}
	}
	s := &scsInstance{db: db, sm: scs.New()}
	switch db.Kind {
	case "postgres":
		s.sm.Store = postgresstore.NewWithCleanupInterval(db.DB, 0)
	case "mysql":
		s.sm.Store = mysqlstore.NewWithCleanupInterval(db.DB, 0)
	case "sqlite":
		s.sm.Store = sqlite3store.NewWithCleanupInterval(db.DB, 0)
	}
	s.sm.Lifetime = Lifetime
	s.sm.IdleTimeout = idle
	s.sm.ErrorFunc = s.errs.handle
	s.handler = s.sm.LoadAndSave(routes(
		func(r *http.Request) int64 { return s.sm.GetInt64(r.Context(), "user_id") },
		func(r *http.Request, n int) { s.sm.Put(r.Context(), "cart_items", n) },
	))
	return s, nil
}

func (s *scsInstance) CookieName() string    { return s.sm.Cookie.Name }
func (s *scsInstance) Handler() http.Handler { return s.handler }

// Create writes a session through scs's own Load, Put and Commit. scs
// cannot backdate a session: age is ignored.
func (s *scsInstance) Create(ctx context.Context, i int, _ time.Duration) (string, error) {
	sctx, err := s.sm.Load(ctx, "")
	if err != nil {
		return "", err
	}
	for k, v := range SessionValues(i) {
		s.sm.Put(sctx, k, v)
	}
	token, _, err := s.sm.Commit(sctx)
	return token, err
}

func (s *scsInstance) Mark()                              {}
func (s *scsInstance) Notes() string                      { return "" }
func (s *scsInstance) Conflicts() uint64                  { return 0 }
func (s *scsInstance) MiddlewareErrors() (uint64, string) { return s.errs.get() }

func (s *scsInstance) Close(ctx context.Context) error {
	if !s.db.release("sessions") {
		return nil
	}
	_, err := s.db.DB.ExecContext(ctx, "DROP TABLE sessions")
	return err
}
