package sweeper

import (
	"fmt"
	"strings"
	"time"
)

// Report describes one run: a call of [Sweeper.SweepOnce] or one round of
// [Sweeper.Run]. Counts are of committed changes only.
type Report struct {
	// Started is the Clock's time at the start of the run; rows expired at
	// that instant were the run's targets.
	Started time.Time
	// Duration is the wall-clock time the run took.
	Duration time.Duration
	// Deleted is the number of rows deleted.
	Deleted int64
	// Cleared is the number of rows whose data was set to NULL.
	Cleared int64
	// Batches is the number of batch statements that committed.
	Batches int
	// Errors is the number of failed statement attempts, including those
	// retried successfully.
	Errors int
	// Skipped reports that another instance held the lease, so this run
	// swept nothing.
	Skipped bool
	// Holder and HeldUntil name the instance that held the lease and when
	// its lease ends, when Skipped.
	Holder    string
	HeldUntil time.Time
	// Err is the error that ended the run early, or nil. It is also what
	// SweepOnce returns.
	Err error
}

// Rows returns the number of rows the run changed: deleted plus cleared.
func (r Report) Rows() int64 { return r.Deleted + r.Cleared }

// RowsPerSecond returns Rows divided by Duration, or 0 for an empty run.
func (r Report) RowsPerSecond() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Rows()) / r.Duration.Seconds()
}

// String returns a one-line summary, such as
// "deleted 1200, cleared 0 in 3 batches, 0 errors, 41ms".
func (r Report) String() string {
	var b strings.Builder
	if r.Skipped {
		fmt.Fprintf(&b, "skipped: lease held by %q until %s", r.Holder, r.HeldUntil.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(&b, "deleted %d, cleared %d in %d batches, %d errors, %s",
			r.Deleted, r.Cleared, r.Batches, r.Errors, r.Duration.Round(time.Millisecond))
	}
	if r.Err != nil {
		fmt.Fprintf(&b, ": %v", r.Err)
	}
	return b.String()
}
