// Command visitsession manages visit tables and runs the conformance suite,
// the sweeper and the demo application.
//
// Usage:
//
//	visitsession migrate     --driver D --dsn DSN [--table NAME] [--print]
//	visitsession sweep       --driver D --dsn DSN [--table NAME] [--once]
//	visitsession conformance --driver D --dsn DSN [--table NAME]
//	visitsession demo        [--addr 127.0.0.1:8080] [--driver D --dsn DSN]
//
// D is one of postgres, mysql or sqlite. Run a subcommand with -h for its
// flags.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/go-sql-driver/mysql" // registers "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

// command is one subcommand. run returns the process exit status.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{migrateCommand, sweepCommand, conformanceCommand, demoCommand}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "visitsession: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: visitsession <command> [flags]")
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
}

// dbFlags are the flags every subcommand shares.
type dbFlags struct {
	driver string
	dsn    string
	table  string
}

// register adds --driver, --dsn and --table to fs.
func (f *dbFlags) register(fs *flag.FlagSet, defaultDriver, defaultDSN string) {
	fs.StringVar(&f.driver, "driver", defaultDriver, "database: postgres, mysql or sqlite")
	fs.StringVar(&f.dsn, "dsn", defaultDSN, "data source name of the database (never printed)")
	fs.StringVar(&f.table, "table", "visit", "name of the visit table, optionally schema-qualified")
}

// visitTable returns the visit table layout named by --table.
func (f *dbFlags) visitTable() (visit.Table, error) {
	t := visit.Default().WithName(f.table)
	if err := t.Validate(); err != nil {
		return visit.Table{}, err
	}
	return t, nil
}

// open opens and pings the database named by the flags.
func (f *dbFlags) open(ctx context.Context) (*sql.DB, dialect.Dialect, error) {
	driver, d, err := driverFor(f.driver)
	if err != nil {
		return nil, nil, err
	}
	if f.dsn == "" {
		return nil, nil, errors.New("--dsn is required")
	}
	db, err := sql.Open(driver, f.dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s database: %w", f.driver, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("connect to %s database: %w", f.driver, err)
	}
	return db, d, nil
}

// driverFor maps a --driver value to the database/sql driver name and the
// dialect.
func driverFor(name string) (string, dialect.Dialect, error) {
	switch name {
	case "postgres", "postgresql", "pgx":
		return "pgx", dialect.Postgres(), nil
	case "mysql", "mariadb":
		return "mysql", dialect.MySQL(), nil
	case "sqlite", "sqlite3":
		return "sqlite", dialect.SQLite(), nil
	}
	return "", nil, fmt.Errorf("unknown --driver %q: want postgres, mysql or sqlite", name)
}
