package peer

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/visitsession/visitsession/bench/internal/countdriver"
	"github.com/visitsession/visitsession/dialect"
)

// Default DSNs of the local servers, the same the library's tests use.
const (
	DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultMySQLDSN    = "root@tcp(127.0.0.1:3306)/test"
	// SQLitePragmas is the DSN suffix the README recommends for SQLite.
	SQLitePragmas = "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
)

// Kinds lists the database kinds, in run order.
var Kinds = []string{"postgres", "mysql", "sqlite"}

// Database is one fresh database, dropped by Close, with a pool whose
// statements are counted. Every contender runs on the same pool.
type Database struct {
	// Kind is "postgres", "mysql" or "sqlite".
	Kind string
	// Version is the server's version string.
	Version string
	// DB is the counted pool on the fresh database.
	DB *sql.DB
	// Dialect is visitsession's dialect for Kind.
	Dialect dialect.Dialect
	// Counter counts the statements sent through DB.
	Counter *countdriver.Counter

	drop func(ctx context.Context) error

	mu   sync.Mutex
	refs map[string]int // users of shared tables
}

// acquire counts one more user of the shared table name and reports
// whether it is the first, which creates the table.
func (d *Database) acquire(name string) (first bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refs == nil {
		d.refs = map[string]int{}
	}
	d.refs[name]++
	return d.refs[name] == 1
}

// release counts one less user of the shared table name and reports
// whether it was the last, which drops the table.
func (d *Database) release(name string) (last bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refs[name]--
	return d.refs[name] == 0
}

// Close closes the pool and drops the database.
func (d *Database) Close(ctx context.Context) error {
	err := d.DB.Close()
	if d.drop != nil {
		err = errors.Join(err, d.drop(ctx))
	}
	return err
}

// counted holds one counting driver per kind, registered on first use.
var counted = struct {
	once     sync.Once
	counters map[string]*countdriver.Counter
}{}

func countingDriver(kind string) (name string, c *countdriver.Counter) {
	counted.once.Do(func() {
		counted.counters = map[string]*countdriver.Counter{
			"postgres": new(countdriver.Counter),
			"mysql":    new(countdriver.Counter),
			"sqlite":   new(countdriver.Counter),
		}
		countdriver.Register("counting-pgx", stdlib.GetDefaultDriver(), counted.counters["postgres"])
		countdriver.Register("counting-mysql", &mysql.MySQLDriver{}, counted.counters["mysql"])
		countdriver.Register("counting-sqlite", &sqlite.Driver{}, counted.counters["sqlite"])
	})
	switch kind {
	case "postgres":
		name = "counting-pgx"
	case "mysql":
		name = "counting-mysql"
	case "sqlite":
		name = "counting-sqlite"
	}
	return name, counted.counters[kind]
}

// OpenOptions says where the servers are and how large the pool is.
type OpenOptions struct {
	// PostgresDSN names a database on the PostgreSQL server; a fresh
	// database is created beside it. Default: DefaultPostgresDSN.
	PostgresDSN string
	// MySQLDSN names a database on the MySQL or MariaDB server; a fresh
	// database is created beside it, with the same parameters.
	// Default: DefaultMySQLDSN.
	MySQLDSN string
	// TempDir holds the SQLite file. Default: a new directory under
	// os.TempDir(), removed by Close.
	TempDir string
	// Pool is the pool's maximum of open and of idle connections.
	// Default: 8.
	Pool int
}

// Open creates a fresh database of kind on its server and returns it with
// a counted pool.
func Open(ctx context.Context, kind string, o OpenOptions) (*Database, error) {
	if o.Pool <= 0 {
		o.Pool = 8
	}
	name := "vs_peer_" + randomHex(6)
	drv, c := countingDriver(kind)
	d := &Database{Kind: kind, Counter: c}
	var dsn string
	switch kind {
	case "postgres":
		base := or(o.PostgresDSN, DefaultPostgresDSN)
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return nil, err
		}
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			admin.Close()
			return nil, fmt.Errorf("postgres: create database: %w", err)
		}
		u, err := url.Parse(base)
		if err != nil {
			admin.Close()
			return nil, fmt.Errorf("postgres DSN must be a URL: %w", err)
		}
		u.Path = "/" + name
		dsn = u.String()
		d.Dialect = dialect.Postgres()
		d.drop = func(ctx context.Context) error {
			defer admin.Close()
			_, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			return err
		}
	case "mysql":
		base := or(o.MySQLDSN, DefaultMySQLDSN)
		cfg, err := mysql.ParseDSN(base)
		if err != nil {
			return nil, err
		}
		admin, err := sql.Open("mysql", base)
		if err != nil {
			return nil, err
		}
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			admin.Close()
			return nil, fmt.Errorf("mysql: create database: %w", err)
		}
		cfg.DBName = name
		dsn = cfg.FormatDSN()
		d.Dialect = dialect.MySQL()
		d.drop = func(ctx context.Context) error {
			defer admin.Close()
			_, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
			return err
		}
	case "sqlite":
		dir := o.TempDir
		own := dir == ""
		if own {
			var err error
			if dir, err = os.MkdirTemp("", "peerbench-"); err != nil {
				return nil, err
			}
		}
		path := filepath.Join(dir, name+".db")
		dsn = "file:" + path + SQLitePragmas
		d.Dialect = dialect.SQLite()
		d.drop = func(context.Context) error {
			if own {
				return os.RemoveAll(dir)
			}
			return errors.Join(os.Remove(path), os.Remove(path+"-wal"), os.Remove(path+"-shm"))
		}
	default:
		return nil, fmt.Errorf("unknown database kind %q (want postgres, mysql or sqlite)", kind)
	}
	db, err := sql.Open(drv, dsn)
	if err != nil {
		_ = d.drop(context.WithoutCancel(ctx))
		return nil, err
	}
	db.SetMaxOpenConns(o.Pool)
	db.SetMaxIdleConns(o.Pool)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	d.DB = db
	pingCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = d.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	q := "SELECT version()"
	if kind == "sqlite" {
		q = "SELECT 'SQLite ' || sqlite_version()"
	}
	if err := db.QueryRowContext(ctx, q).Scan(&d.Version); err != nil {
		_ = d.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%s: version: %w", kind, err)
	}
	return d, nil
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
