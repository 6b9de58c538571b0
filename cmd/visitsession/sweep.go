package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/visitsession/visitsession/sweeper"
)

var sweepCommand = command{
	name:    "sweep",
	summary: "delete or clear expired sessions, once or until interrupted",
	run:     runSweep,
}

// retentionFlag is --delete-after: a duration, or "never".
type retentionFlag struct {
	d   time.Duration
	set bool
}

func (f *retentionFlag) String() string {
	if f.d == sweeper.Never {
		return "never"
	}
	return f.d.String()
}

func (f *retentionFlag) Set(s string) error {
	f.set = true
	if s == "never" {
		f.d = sweeper.Never
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New(`want a duration such as 0, 720h or 90m, or "never"`)
	}
	if d < 0 {
		return errors.New("negative retention")
	}
	f.d = d
	return nil
}

func runSweep(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: visitsession sweep --driver D --dsn DSN [--table NAME] [--once] [--batch N]")
		fmt.Fprintln(stderr, "                          [--delete-after DUR|never] [--clear-data] [--interval DUR]")
		fmt.Fprintln(stderr, "Deletes expired visits, or with --clear-data clears their session data and keeps")
		fmt.Fprintln(stderr, "the rows. With --once it sweeps once and prints a summary; otherwise it sweeps every")
		fmt.Fprintln(stderr, "interval until SIGINT or SIGTERM. Instances share a lease row in the table, so any")
		fmt.Fprintln(stderr, "number of them may run.")
		fs.PrintDefaults()
	}
	var f dbFlags
	f.register(fs, "", "")
	once := fs.Bool("once", false, "sweep once, print a summary and exit")
	batch := fs.Int("batch", 1000, "rows per batch statement")
	clearData := fs.Bool("clear-data", false, "clear the session data of expired visits and keep their rows")
	var deleteAfter retentionFlag
	fs.Var(&deleteAfter, "delete-after", `delete rows expired for longer than this, or "never" (default 0, or never with --clear-data)`)
	interval := fs.Duration("interval", 5*time.Minute, "time between sweeps, without --once")
	verbose := fs.Bool("v", false, "log every batch")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "visitsession sweep: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *clearData && !deleteAfter.set {
		deleteAfter.d = sweeper.Never
	}
	if *clearData && deleteAfter.d == 0 {
		fmt.Fprintln(stderr, "visitsession sweep: --clear-data with --delete-after 0 would delete every row it clears; "+
			"give a retention such as 2160h, or never")
		return 2
	}
	t, err := f.visitTable()
	if err != nil {
		fmt.Fprintf(stderr, "visitsession sweep: %v\n", err)
		return 2
	}
	// With --once the summary goes to stdout; the log has only problems.
	level := slog.LevelInfo
	switch {
	case *verbose:
		level = slog.LevelDebug
	case *once:
		level = slog.LevelWarn
	}
	opts := sweeper.Options{
		ClearData:   *clearData,
		DeleteAfter: deleteAfter.d,
		BatchSize:   *batch,
		Interval:    *interval,
		Logger:      slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	if *interval <= 0 {
		fmt.Fprintln(stderr, "visitsession sweep: --interval must be positive")
		return 2
	}
	if *batch <= 0 {
		fmt.Fprintln(stderr, "visitsession sweep: --batch must be positive")
		return 2
	}
	db, d, err := f.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "visitsession sweep: %v\n", err)
		return 1
	}
	defer db.Close()
	sw, err := sweeper.New(db, d, t, opts)
	if err != nil {
		fmt.Fprintf(stderr, "visitsession sweep: %v\n", err)
		return 2
	}
	if !*once {
		if err := sw.Run(ctx); err != nil {
			fmt.Fprintf(stderr, "visitsession sweep: %v\n", err)
			return 1
		}
		return 0
	}
	rep, err := sw.SweepOnce(ctx)
	fmt.Fprintf(stdout, "%s: %s\n", t.Name, rep.String())
	if err != nil {
		return 1
	}
	return 0
}
