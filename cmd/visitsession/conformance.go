package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/visitsession/visitsession/conformance"
)

var conformanceCommand = command{
	name:    "conformance",
	summary: "run the behaviour suite against a database",
	run:     runConformance,
}

// oneLine keeps a case's message on its report line.
var oneLine = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ")

// runConformance runs the conformance suite and prints one line per case
// ("PASS name", "FAIL name: message", "SKIP name: reason") and a last line
// "N passed, N failed" (", N skipped" when any was). It exits 1 when a case
// failed or the database cannot be reached, and 2 on a usage error.
func runConformance(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f dbFlags
	f.register(fs, "", "")
	// Unlike the other commands, the suite has no table by default: each
	// case makes and drops a scratch table of its own.
	f.table = ""
	tableFlag := fs.Lookup("table")
	tableFlag.DefValue = ""
	tableFlag.Usage = "existing visit table to run on, touching only rows the suite creates (default: a scratch table per case)"
	run := fs.String("run", "", "run only the cases whose names match this regular expression")
	timeout := fs.Duration("timeout", time.Minute, "time limit of each case")
	parallel := fs.Bool("parallel", true, "run cases concurrently (turn off for a SQLite DSN without busy_timeout)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: visitsession conformance --driver postgres|mysql|sqlite --dsn DSN [--table NAME] [--run REGEXP]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		return 2
	}
	usageErr := func(err error) int {
		fmt.Fprintf(stderr, "visitsession conformance: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		return usageErr(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	driver, _, err := driverFor(f.driver)
	if err != nil {
		return usageErr(err)
	}
	if f.dsn == "" {
		return usageErr(errors.New("--dsn is required"))
	}
	if _, err := regexp.Compile(*run); err != nil {
		return usageErr(fmt.Errorf("--run: %w", err))
	}
	if *timeout <= 0 {
		return usageErr(fmt.Errorf("--timeout %v: must be positive", *timeout))
	}
	opts := []conformance.Option{
		conformance.WithRun(*run),
		conformance.WithTimeout(*timeout),
		conformance.WithParallel(*parallel),
		conformance.WithOpener(func(context.Context) (*sql.DB, error) { return sql.Open(driver, f.dsn) }),
	}
	if f.table != "" {
		t, err := f.visitTable()
		if err != nil {
			return usageErr(fmt.Errorf("--table: %w", err))
		}
		opts = append(opts, conformance.WithTable(t))
	}

	db, d, err := f.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "visitsession conformance: %v\n", err)
		return 1
	}
	defer db.Close()
	rep := conformance.Check(ctx, db, d, opts...)
	for _, r := range rep.Results {
		switch r.Outcome {
		case conformance.Pass:
			fmt.Fprintf(stdout, "PASS %s\n", r.Name)
		default:
			fmt.Fprintf(stdout, "%s %s: %s\n", r.Outcome, r.Name, oneLine.Replace(r.Message))
		}
	}
	fmt.Fprintln(stdout, rep.Summary())
	if rep.Count(conformance.Fail) > 0 {
		return 1
	}
	return 0
}
