// Package testdb gives tests fresh databases on the real servers: one
// throw-away database per test binary and dialect, created on first use and
// dropped by [Main], and a fresh randomly named visit table per test.
//
// DSNs come from VISITSESSION_POSTGRES_DSN and VISITSESSION_MYSQL_DSN,
// defaulting to the local servers; SQLite uses a WAL file database in a
// temporary directory. An unreachable server skips the test, naming the
// variable, unless VISITSESSION_REQUIRE_ALL=1, which turns the skip into a
// failure.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

// Environment variables read by this package.
const (
	EnvPostgres   = "VISITSESSION_POSTGRES_DSN"
	EnvMySQL      = "VISITSESSION_MYSQL_DSN"
	EnvRequireAll = "VISITSESSION_REQUIRE_ALL"
	// EnvOnly, when set to a dialect name, limits [Each] to that dialect.
	EnvOnly = "VISITSESSION_ONLY"
)

// Default DSNs of the local servers.
const (
	DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultMySQLDSN    = "root@tcp(127.0.0.1:3306)/test"
)

// Kinds lists the dialect names in test order.
var Kinds = []string{"sqlite", "postgres", "mysql"}

// Target is one database under test.
type Target struct {
	// Kind is "sqlite", "postgres" or "mysql".
	Kind string
	// Driver is the database/sql driver name.
	Driver string
	// DSN opens the fresh database created for this test binary.
	DSN string
	// Dialect is the matching dialect.
	Dialect dialect.Dialect
	// DB is a shared pool on the fresh database.
	DB *sql.DB
}

type state struct {
	once   sync.Once
	target *Target
	err    error
	envVar string
	drop   func()
}

var (
	mu     sync.Mutex
	states = map[string]*state{}
	tmpDir string
)

// Main runs the tests and then drops every database created. Use it from
// TestMain: func TestMain(m *testing.M) { testdb.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	mu.Lock()
	for _, s := range states {
		if s.drop != nil {
			s.drop()
		}
	}
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	mu.Unlock()
	os.Exit(code)
}

// Required reports whether skips are forbidden (VISITSESSION_REQUIRE_ALL=1).
func Required() bool { return os.Getenv(EnvRequireAll) == "1" }

// Get returns the target of the given kind, creating its database on first
// use. An unreachable server skips t (or fails it when skips are
// forbidden).
func Get(t testing.TB, kind string) *Target {
	t.Helper()
	mu.Lock()
	s := states[kind]
	if s == nil {
		s = &state{}
		states[kind] = s
	}
	mu.Unlock()
	s.once.Do(func() { s.target, s.envVar, s.drop, s.err = create(kind) })
	if s.err != nil {
		if Required() {
			t.Fatalf("%s database unavailable (set %s): %v", kind, s.envVar, s.err)
		}
		t.Skipf("%s database unavailable (set %s, or %s=1 to fail): %v", kind, s.envVar, EnvRequireAll, s.err)
	}
	return s.target
}

// Each runs f as a subtest for every dialect, in parallel when parallel is
// true.
func Each(t *testing.T, f func(t *testing.T, tg *Target)) {
	t.Helper()
	only := os.Getenv(EnvOnly)
	for _, kind := range Kinds {
		if only != "" && only != kind {
			continue
		}
		t.Run(kind, func(t *testing.T) {
			f(t, Get(t, kind))
		})
	}
}

// Open returns a new pool on the target's database, closed at the end of
// the test; use it where a test needs a pool of its own (two app
// instances, pool limits).
func (tg *Target) Open(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open(tg.Driver, tg.DSN)
	if err != nil {
		t.Fatalf("open %s: %v", tg.Kind, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Table returns a fresh random table name, dropped at the end of the test.
// The table is not created.
func (tg *Target) Table(t testing.TB) visit.Table {
	t.Helper()
	tab := visit.Default().WithName("visit_" + RandomSuffix())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = tg.DB.ExecContext(ctx, "DROP TABLE IF EXISTS "+tg.Dialect.Quote(tab.Name))
	})
	return tab
}

// CreateTable returns a fresh table created with visit.Migrate.
func (tg *Target) CreateTable(t testing.TB) visit.Table {
	t.Helper()
	tab := tg.Table(t)
	if _, err := visit.Migrate(context.Background(), tg.DB, tg.Dialect, tab); err != nil {
		t.Fatalf("migrate %s: %v", tab.Name, err)
	}
	return tab
}

// RandomSuffix returns 12 random lowercase hex digits.
func RandomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func create(kind string) (tg *Target, envVar string, drop func(), err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := "vs_test_" + RandomSuffix()
	switch kind {
	case "sqlite":
		mu.Lock()
		if tmpDir == "" {
			tmpDir, err = os.MkdirTemp("", "visitsession-test-")
		}
		dir := tmpDir
		mu.Unlock()
		if err != nil {
			return nil, "", nil, err
		}
		dsn := dialect.SQLiteFileDSN(filepath.Join(dir, name+".db"))
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, "", nil, err
		}
		if err := db.PingContext(ctx); err != nil {
			return nil, "", nil, err
		}
		return &Target{Kind: kind, Driver: "sqlite", DSN: dsn, Dialect: dialect.SQLite(), DB: db}, "", func() { db.Close() }, nil
	case "postgres":
		base := env(EnvPostgres, DefaultPostgresDSN)
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return nil, EnvPostgres, nil, err
		}
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			admin.Close()
			return nil, EnvPostgres, nil, err
		}
		u, err := url.Parse(base)
		if err != nil {
			admin.Close()
			return nil, EnvPostgres, nil, fmt.Errorf("%s must be a postgres:// URL: %w", EnvPostgres, err)
		}
		u.Path = "/" + name
		dsn := u.String()
		db, err := sql.Open("pgx", dsn)
		if err == nil {
			err = db.PingContext(ctx)
		}
		if err != nil {
			admin.Close()
			return nil, EnvPostgres, nil, err
		}
		return &Target{Kind: kind, Driver: "pgx", DSN: dsn, Dialect: dialect.Postgres(), DB: db}, EnvPostgres, func() {
			db.Close()
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = admin.ExecContext(c, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			admin.Close()
		}, nil
	case "mysql":
		base := env(EnvMySQL, DefaultMySQLDSN)
		cfg, err := mysql.ParseDSN(base)
		if err != nil {
			return nil, EnvMySQL, nil, err
		}
		admin, err := sql.Open("mysql", base)
		if err != nil {
			return nil, EnvMySQL, nil, err
		}
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			admin.Close()
			return nil, EnvMySQL, nil, err
		}
		cfg.DBName = name
		dsn := cfg.FormatDSN()
		db, err := sql.Open("mysql", dsn)
		if err == nil {
			err = db.PingContext(ctx)
		}
		if err != nil {
			admin.Close()
			return nil, EnvMySQL, nil, err
		}
		return &Target{Kind: kind, Driver: "mysql", DSN: dsn, Dialect: dialect.MySQL(), DB: db}, EnvMySQL, func() {
			db.Close()
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = admin.ExecContext(c, "DROP DATABASE IF EXISTS "+name)
			admin.Close()
		}, nil
	}
	return nil, "", nil, fmt.Errorf("unknown kind %q", kind)
}
