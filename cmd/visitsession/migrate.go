package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/visitsession/visitsession/visit"
)

var migrateCommand = command{
	name:    "migrate",
	summary: "create or upgrade the visit table, or print its DDL",
	run:     runMigrate,
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f dbFlags
	f.register(fs, "", "")
	printOnly := fs.Bool("print", false, "print the statements that would run, and run nothing")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	t, err := f.visitTable()
	if err != nil {
		fmt.Fprintf(stderr, "visitsession migrate: %v\n", err)
		return 2
	}
	if *printOnly && f.dsn == "" {
		// Without a database, print the full CREATE for a DBA.
		_, d, err := driverFor(f.driver)
		if err != nil {
			fmt.Fprintf(stderr, "visitsession migrate: %v\n", err)
			return 2
		}
		for _, s := range d.CreateTable(t) {
			fmt.Fprintln(stdout, s+";")
		}
		return 0
	}
	db, d, err := f.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "visitsession migrate: %v\n", err)
		return 1
	}
	defer db.Close()
	var stmts []string
	if *printOnly {
		stmts, err = visit.Plan(ctx, db, d, t)
	} else {
		stmts, err = visit.Migrate(ctx, db, d, t)
	}
	if err != nil {
		fmt.Fprintf(stderr, "visitsession migrate: %v\n", err)
		return 1
	}
	for _, s := range stmts {
		fmt.Fprintln(stdout, s+";")
	}
	if !*printOnly {
		fmt.Fprintf(stderr, "visitsession migrate: %s is up to date (%d statements run)\n", t.Name, len(stmts))
	}
	return 0
}
