// Command peerbench compares visitsession with github.com/alexedwards/scs
// (with and without IdleTimeout) on PostgreSQL, MySQL/MariaDB and SQLite,
// and prints a Markdown report: requests per second, latency, statements
// per 1,000 requests by kind, and whether visitsession meets its targets.
//
// Usage:
//
//	cd bench && go run ./cmd/peerbench -duration 10s
//
// Each database gets a fresh database (PostgreSQL, MariaDB) or file
// (SQLite), dropped at the end; each configuration gets fresh tables.
// The servers are named by -postgres-dsn and -mysql-dsn, which default to
// VISITSESSION_POSTGRES_DSN and VISITSESSION_MYSQL_DSN, else to the local
// servers. A configuration that fails is reported and the others go on;
// the exit status is then 1. It is 0 otherwise, whether or not the
// targets were met.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/visitsession/visitsession/bench/internal/peer"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		w     peer.Workload
		o     peer.OpenOptions
		dbs   = flag.String("db", strings.Join(peer.Kinds, ","), "databases to run, comma-separated: postgres, mysql, sqlite")
		libs  = flag.String("libs", "visitsession,scs-idle,scs", "configurations to run, comma-separated: visitsession, scs-idle (scs with IdleTimeout), scs (without)")
		out   = flag.String("o", "", "write the Markdown report to this file as well as to standard output")
		quiet = flag.Bool("q", false, "no progress lines on standard error")
	)
	flag.DurationVar(&w.Duration, "duration", 10*time.Second, "measured time per configuration")
	flag.IntVar(&w.Slices, "slices", 5, "cut each configuration's measured time into this many slices, run in rotation with the other configurations'")
	flag.StringVar(&w.CPUProfile, "cpuprofile", "", "write a CPU profile of every measured slice into this directory, as DB-LIB-SLICE.pprof")
	flag.IntVar(&w.Requests, "requests", 0, "end each measured phase after this many requests instead (still bounded by -duration)")
	flag.DurationVar(&w.Warmup, "warmup", time.Second, "unmeasured warm-up per configuration")
	flag.IntVar(&w.Sessions, "sessions", 10000, "sessions created before each run")
	flag.IntVar(&w.Clients, "clients", 8, "concurrent clients")
	flag.Float64Var(&w.WriteShare, "writes", 0.05, "share of requests that write a value")
	flag.DurationVar(&w.IdleSpread, "idle-spread", 0, "create visitsession's sessions as last used between 0 and this long ago; with -libs visitsession and 12m (its touch interval), measures steady-state touches")
	flag.BoolVar(&w.HTTP, "http", false, "send requests over loopback HTTP through an httptest.Server instead of calling ServeHTTP")
	flag.Uint64Var(&w.Seed, "seed", 1, "seed of the clients' choices")
	flag.IntVar(&o.Pool, "pool", 0, "connections per pool, open and idle (default: -clients)")
	flag.StringVar(&o.PostgresDSN, "postgres-dsn", envOr("VISITSESSION_POSTGRES_DSN", peer.DefaultPostgresDSN), "PostgreSQL server (a fresh database is created beside the one named)")
	flag.StringVar(&o.MySQLDSN, "mysql-dsn", envOr("VISITSESSION_MYSQL_DSN", peer.DefaultMySQLDSN), "MySQL/MariaDB server (a fresh database is created beside the one named)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if o.Pool <= 0 {
		o.Pool = w.Clients
	}
	if w.Slices < 1 {
		return fmt.Errorf("-slices %d: must be at least 1", w.Slices)
	}
	if w.WriteShare < 0 || w.WriteShare > 1 {
		return fmt.Errorf("-writes %v: must be between 0 and 1", w.WriteShare)
	}
	kinds, err := pick(*dbs, peer.Kinds)
	if err != nil {
		return fmt.Errorf("-db: %w", err)
	}
	var names []string
	all := peer.Contenders()
	for _, c := range all {
		names = append(names, c.Name)
	}
	chosen, err := pick(*libs, names)
	if err != nil {
		return fmt.Errorf("-libs: %w", err)
	}
	var contenders []peer.Contender
	for _, c := range all {
		if slices.Contains(chosen, c.Name) {
			contenders = append(contenders, c)
		}
	}
	if w.CPUProfile != "" {
		if err := os.MkdirAll(w.CPUProfile, 0o755); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	progress := func(format string, args ...any) {
		if !*quiet {
			fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
		}
	}
	rep := &peer.Report{
		Command:   commandLine(os.Args[1:]),
		Started:   time.Now(),
		Workload:  w,
		Pool:      o.Pool,
		Machine:   peer.ThisMachine(),
		Versions:  map[string]string{},
		Libraries: peer.Libraries(),
	}
	progress("load average %s", rep.Machine.LoadBefore)
	failed := false
	for _, kind := range kinds {
		db, err := peer.Open(ctx, kind, o)
		if err != nil {
			return err
		}
		rep.Versions[kind] = db.Version
		results, err := peer.Run(ctx, db, contenders, w, progress)
		if err != nil {
			_ = db.Close(context.WithoutCancel(ctx))
			return err
		}
		for _, r := range results {
			failed = failed || r.Failed != ""
		}
		rep.Results = append(rep.Results, results...)
		if err := db.Close(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("%s: drop: %w", kind, err)
		}
	}
	rep.Machine.LoadAfter = peer.LoadAverage()

	var sb strings.Builder
	rep.Markdown(&sb)
	fmt.Print(sb.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(sb.String()), 0o644); err != nil {
			return err
		}
	}
	if failed {
		return fmt.Errorf("some runs failed; see the report")
	}
	return nil
}

// pick splits a comma-separated list and checks each name against valid.
func pick(list string, valid []string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !slices.Contains(valid, n) {
			return nil, fmt.Errorf("unknown %q (want %s)", n, strings.Join(valid, ", "))
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return out, nil
}

// commandLine returns the invocation as a shell would take it back.
func commandLine(args []string) string {
	out := []string{"peerbench"}
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"\\$`!*?()[]{}<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
