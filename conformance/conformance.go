package conformance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/dialect"
)

// ErrFailed reports that at least one case failed. [Report.Err] wraps it,
// together with one [*CaseError] per failed case.
var ErrFailed = errors.New("conformance: cases failed")

// Outcome is how one case ended.
type Outcome int

const (
	// Pass means the database behaved as the case requires.
	Pass Outcome = iota
	// Fail means it did not; the message says what differed.
	Fail
	// Skip means the case does not apply to this database; the message
	// says why.
	Skip
)

// String returns "PASS", "FAIL" or "SKIP".
func (o Outcome) String() string {
	switch o {
	case Pass:
		return "PASS"
	case Fail:
		return "FAIL"
	case Skip:
		return "SKIP"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is the outcome of one case.
type Result struct {
	// Name names the case, such as "Expiry/MicrosecondBoundary"; see
	// [CaseNames].
	Name string
	// Outcome is pass, fail or skip.
	Outcome Outcome
	// Message says what failed, or why the case was skipped; "" for a
	// pass. It never contains a session token, a stored key or a DSN.
	Message string
	// Duration is the wall-clock time the case took, cleanup included.
	Duration time.Duration
}

// Report is what [Check] found: one [Result] per case run, in the order
// of [CaseNames].
type Report struct {
	// Dialect is the name of the dialect checked.
	Dialect string
	// Table is the existing table given with [WithTable], or "" when every
	// case used scratch tables.
	Table string
	// Results holds one result per case run: every case, or those that
	// [WithRun] selected.
	Results []Result
	// Duration is the wall-clock time of the whole run.
	Duration time.Duration
}

// Count returns the number of results with outcome o.
func (r Report) Count(o Outcome) int {
	n := 0
	for _, res := range r.Results {
		if res.Outcome == o {
			n++
		}
	}
	return n
}

// Summary returns "N passed, N failed", followed by ", N skipped" when any
// case was skipped.
func (r Report) Summary() string {
	s := fmt.Sprintf("%d passed, %d failed", r.Count(Pass), r.Count(Fail))
	if n := r.Count(Skip); n > 0 {
		s += fmt.Sprintf(", %d skipped", n)
	}
	return s
}

// Err returns nil when no case failed. Otherwise it returns an error that
// wraps [ErrFailed] and, for each failed case, a [*CaseError] (reachable
// with errors.As).
func (r Report) Err() error {
	var errs []error
	for _, res := range r.Results {
		if res.Outcome == Fail {
			errs = append(errs, &CaseError{Name: res.Name, Message: res.Message})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d of %d on %s: %w", ErrFailed, len(errs), len(r.Results), r.Dialect, errors.Join(errs...))
}

// CaseError is the failure of one case, as returned within [Report.Err].
type CaseError struct {
	// Name names the failed case.
	Name string
	// Message says what differed.
	Message string
}

// Error returns "name: message".
func (e *CaseError) Error() string { return e.Name + ": " + e.Message }

// Unwrap returns ErrFailed, so that errors.Is(err, ErrFailed) holds for a
// single case's error too.
func (e *CaseError) Unwrap() error { return ErrFailed }

// CaseNames returns the names of every case, in the order they are
// reported.
func CaseNames() []string {
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	return names
}

// Run runs every case as a subtest of t, named as in [CaseNames]: a
// failed case fails its subtest with the case's message, and a case that
// does not apply to the database skips it. Cases run in parallel with each
// other (t.Parallel) unless [WithParallel](false) is given; select cases
// with go test -run as usual, or with [WithRun].
//
// db is the pool to test and d its dialect. Without [WithTable], each case
// creates and drops scratch tables; with it, cases touch only rows they
// created, on the given table.
func Run(t *testing.T, db *sql.DB, d dialect.Dialect, opts ...Option) {
	t.Helper()
	cfg, err := newConfig(db, d, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.selected {
		t.Run(c.name, func(t *testing.T) {
			if cfg.parallel && !c.serial {
				t.Parallel()
			}
			res := runCase(t.Context(), cfg, c)
			switch res.Outcome {
			case Skip:
				t.Skip(res.Message)
			case Fail:
				t.Error(res.Message)
			}
		})
	}
}

// checkWorkers is how many cases Check runs at once when parallel.
const checkWorkers = 4

// Check runs every case without the testing package, as the
// "visitsession conformance" command does, and returns the report. It
// returns when every case has ended, or, when ctx is cancelled, when the
// cases in flight have cleaned up; cases not yet started are reported as
// failed with ctx's error. Invalid options give a report with one failed
// result named "Options".
//
// db is the pool to test and d its dialect. Without [WithTable], each case
// creates and drops scratch tables; with it, cases touch only rows they
// created, on the given table.
func Check(ctx context.Context, db *sql.DB, d dialect.Dialect, opts ...Option) Report {
	start := time.Now()
	cfg, err := newConfig(db, d, opts)
	if err != nil {
		rep := Report{Results: []Result{{Name: "Options", Outcome: Fail, Message: err.Error()}}}
		if d != nil {
			rep.Dialect = d.Name()
		}
		return rep
	}
	selected := cfg.selected
	rep := Report{Dialect: d.Name(), Results: make([]Result, len(selected))}
	if cfg.realTable {
		rep.Table = cfg.table.Name
	}
	run := func(i int) {
		if err := ctx.Err(); err != nil {
			rep.Results[i] = Result{Name: selected[i].name, Outcome: Fail, Message: "not run: " + err.Error()}
			return
		}
		rep.Results[i] = runCase(ctx, cfg, selected[i])
	}
	// Serial cases first, alone, as go test runs non-parallel subtests
	// before parallel ones.
	var rest []int
	for i, c := range selected {
		if c.serial || !cfg.parallel {
			run(i)
		} else {
			rest = append(rest, i)
		}
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(checkWorkers, len(rest)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				run(i)
			}
		}()
	}
	for _, i := range rest {
		next <- i
	}
	close(next)
	wg.Wait()
	rep.Duration = time.Since(start)
	return rep
}

// runCase runs one case with its timeout and cleanup, and turns its error,
// skip or panic into a Result.
func runCase(ctx context.Context, cfg *config, c testCase) (res Result) {
	start := time.Now()
	res.Name = c.name
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	e := newEnv(cfg)
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		return c.run(ctx, e)
	}()
	cerr := e.cleanup(ctx)
	var skip *skipError
	switch {
	case errors.As(err, &skip):
		res.Outcome, res.Message = Skip, skip.reason
	case err != nil:
		res.Outcome, res.Message = Fail, err.Error()
		if cerr != nil {
			res.Message += "; and cleanup failed: " + cerr.Error()
		}
	case cerr != nil:
		res.Outcome, res.Message = Fail, "cleanup: "+cerr.Error()
	}
	if res.Outcome == Skip && cerr != nil {
		res.Outcome, res.Message = Fail, "cleanup: "+cerr.Error()
	}
	res.Message = strings.TrimSpace(res.Message)
	res.Duration = time.Since(start)
	return res
}

// skipError ends a case that does not apply to the database.
type skipError struct{ reason string }

func (e *skipError) Error() string { return "skipped: " + e.reason }

// skipf returns the error that skips the running case.
func skipf(format string, args ...any) error {
	return &skipError{reason: fmt.Sprintf(format, args...)}
}
