package conformance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

// Option configures [Run] and [Check].
type Option func(*config)

// WithTable points the suite at an existing visit table, such as the
// application's real one. Cases then work only on rows whose keys they
// created, and delete those rows when they end; they never read, change or
// count rows they did not create. Cases that need a table of their own
// (missing tables and columns, create and upgrade, the sweeper, which
// sweeps a whole table) still use scratch tables named after t, in t's
// schema, with t's column names.
// Default: none: every case creates a scratch table with a random name
// through visit.Migrate, and drops it when it ends.
func WithTable(t visit.Table) Option {
	return func(c *config) { c.table, c.realTable = t, true }
}

// WithParallel chooses whether cases run concurrently with each other.
// Cases that hold a database-wide lock (SQLite's locked mode takes the
// database's write lock) always run alone, before the others. Turn it off
// for a SQLite DSN without busy_timeout, where concurrent writers fail at
// once with SQLITE_BUSY.
// Default: true.
func WithParallel(on bool) Option { return func(c *config) { c.parallel = on } }

// WithOpener gives the suite a way to open pools of its own on the same
// database, closed by the suite when the case ends. Cases use one where a
// second application instance matters (two stores on two pools), and to
// run a whole store on a connection whose session time zone has been
// changed.
// Default: none: those cases share the caller's *sql.DB, and the time zone
// case runs the engine's statements on one pinned connection of it.
func WithOpener(open func(ctx context.Context) (*sql.DB, error)) Option {
	return func(c *config) { c.opener = open }
}

// WithTimeout bounds each case. Its cleanup (closing stores, deleting its
// rows, dropping its scratch tables) runs after the case even when the
// timeout or the caller's context ended it, within 30 seconds more.
// Default: 1 minute.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithRun selects the cases whose names (see [CaseNames]) match the
// regular expression pattern, unanchored, as go test -run does for test
// names; the others are not run and not reported. An invalid pattern fails
// the run.
// Default: "" (every case).
func WithRun(pattern string) Option { return func(c *config) { c.run = pattern } }

// config is the resolved configuration of one run of the suite.
type config struct {
	db        *sql.DB
	d         dialect.Dialect
	table     visit.Table
	realTable bool
	parallel  bool
	opener    func(ctx context.Context) (*sql.DB, error)
	timeout   time.Duration
	run       string
	selected  []testCase
	// ddl serializes the migrations the cases run.
	ddl sync.Mutex
}

// newConfig applies opts and checks the result, so that a bad option fails
// the run before any case starts.
func newConfig(db *sql.DB, d dialect.Dialect, opts []Option) (*config, error) {
	if db == nil || d == nil {
		return nil, errors.New("conformance: db and dialect are required")
	}
	c := &config{db: db, d: d, table: visit.Default(), parallel: true, timeout: time.Minute}
	for _, o := range opts {
		o(c)
	}
	if c.realTable {
		if err := c.table.Validate(); err != nil {
			return nil, fmt.Errorf("conformance: table: %w", err)
		}
	}
	if c.timeout <= 0 {
		return nil, fmt.Errorf("conformance: timeout %v: must be positive", c.timeout)
	}
	re, err := regexp.Compile(c.run)
	if err != nil {
		return nil, fmt.Errorf("conformance: run pattern: %w", err)
	}
	for _, tc := range cases {
		if re.MatchString(tc.name) {
			c.selected = append(c.selected, tc)
		}
	}
	return c, nil
}
