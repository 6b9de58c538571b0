package sweeper

import (
	"fmt"
	"log/slog"
	"time"
)

// Never, as [Options.DeleteAfter], keeps expired rows forever; only
// [Options.ClearData] then has something to do.
const Never time.Duration = -1

// MaxBatchSize is the largest [Options.BatchSize] accepted.
const MaxBatchSize = 100_000

// Defaults of the zero fields of [Options].
const (
	defaultBatchSize    = 1000
	defaultPause        = 10 * time.Millisecond
	defaultInterval     = 5 * time.Minute
	defaultMaxRetries   = 3
	defaultBatchTimeout = 30 * time.Second
	defaultLeaseTTL     = time.Minute
)

// Options configures a [Sweeper]. The zero value deletes every row as soon
// as it has expired, 1000 rows per batch, every five minutes (plus up to
// 30 s of jitter), under a one-minute lease.
//
// Where zero means "the default" and turning a feature off is also useful,
// a negative value turns it off, as with net.Dialer's KeepAlive.
type Options struct {
	// ClearData sets the data of expired visits to NULL and keeps their
	// rows, the clean-up policy of TurboGears' visit tracking: the table
	// stays a record of visits while the session contents go. It needs
	// DeleteAfter to be a retention period or [Never]: with DeleteAfter 0
	// every cleared row would be deleted in the same run.
	// Default: false.
	ClearData bool
	// DeleteAfter is how long a row stays after its visit has expired
	// before it is deleted: rows whose expiry is DeleteAfter or more in the
	// past are deleted. Zero deletes rows as soon as they expire; [Never]
	// keeps them. Other negative values are invalid.
	// Default: 0, delete at expiry.
	DeleteAfter time.Duration
	// BatchSize is the largest number of rows one statement changes, from 1
	// to [MaxBatchSize]. A run goes on batch after batch until a batch
	// finds fewer rows to sweep.
	// Default: 1000.
	BatchSize int
	// Pause is the wait between two batches of a run, which leaves the
	// database to other work and keeps replicas from falling behind. A
	// negative value means no pause.
	// Default: 10ms.
	Pause time.Duration
	// Interval is the wait between the end of one run of [Sweeper.Run] and
	// the start of the next.
	// Default: 5 minutes.
	Interval time.Duration
	// Jitter is the upper bound of a random wait added to each Interval,
	// so that instances started together drift apart. A negative value
	// means no jitter.
	// Default: Interval / 10.
	Jitter time.Duration
	// MaxRetries is how many times a statement that failed with an error
	// the dialect classifies as retryable (deadlock, serialization
	// failure, lock wait timeout, busy database, Galera certification
	// failure) is tried again, after a backoff starting at 50ms. A negative
	// value means no retries.
	// Default: 3.
	MaxRetries int
	// BatchTimeout bounds each attempt of a batch or lease statement. A
	// batch in flight is not cancelled with the context of SweepOnce or
	// Run: it finishes, or fails after BatchTimeout, so that the report
	// counts what was committed. A negative value means no bound.
	// Default: 30s.
	BatchTimeout time.Duration
	// LeaseTTL is how long the lease taken at the start of a run lasts
	// without renewal; a run renews it between batches once a third of it
	// has passed. An instance that dies mid-run blocks others for at most
	// LeaseTTL. A negative value sweeps without a lease: concurrent
	// sweepers then all work, still without touching a row twice.
	// Default: 1 minute.
	LeaseTTL time.Duration
	// Clock returns the current time, compared with the expiry column and
	// used for the lease. Waits use real time whatever Clock returns.
	// Default: time.Now.
	Clock func() time.Time
	// Logger receives the sweeper's log records: one per run (Info when
	// rows were swept, Debug when there was nothing to do or another
	// instance held the lease, Error when a run failed), one Debug record
	// per batch and one Warn record per retry.
	// Default: slog.Default() at the time of New.
	Logger *slog.Logger
	// Hook, when set, is called with the report of every run, successful,
	// skipped or failed, after the run has released its lease. Calls for
	// one Sweeper never overlap. It should return quickly.
	// Default: nil.
	Hook func(Report)
}

// config is Options with defaults applied and values checked.
type config struct {
	clearData    bool
	deleteAfter  time.Duration // Never for no deletion
	batchSize    int
	pause        time.Duration
	interval     time.Duration
	jitter       time.Duration
	maxRetries   int
	batchTimeout time.Duration // 0 for none
	leaseTTL     time.Duration // 0 for no lease
	clock        func() time.Time
	logger       *slog.Logger
	hook         func(Report)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("sweeper: new: %w: %s", ErrInvalidOptions, fmt.Sprintf(format, args...))
}

// resolve applies defaults and checks o.
func (o Options) resolve() (config, error) {
	c := config{
		clearData:   o.ClearData,
		deleteAfter: o.DeleteAfter,
		batchSize:   o.BatchSize,
		clock:       o.Clock,
		logger:      o.Logger,
		hook:        o.Hook,
	}
	switch {
	case o.DeleteAfter < 0 && o.DeleteAfter != Never:
		return c, invalid("DeleteAfter %v is negative; use a retention period, 0 or sweeper.Never", o.DeleteAfter)
	case o.DeleteAfter == Never && !o.ClearData:
		return c, invalid("DeleteAfter is Never and ClearData is false: there is nothing to sweep")
	case o.DeleteAfter == 0 && o.ClearData:
		return c, invalid("ClearData with DeleteAfter 0 would delete every row it clears; set DeleteAfter to a retention period or to sweeper.Never")
	}
	switch {
	case o.BatchSize == 0:
		c.batchSize = defaultBatchSize
	case o.BatchSize < 0 || o.BatchSize > MaxBatchSize:
		return c, invalid("BatchSize %d is outside 1..%d", o.BatchSize, MaxBatchSize)
	}
	if o.Interval < 0 {
		return c, invalid("Interval %v is negative", o.Interval)
	}
	c.interval = orDefault(o.Interval, defaultInterval)
	c.pause = orDefault(o.Pause, defaultPause)
	c.jitter = orDefault(o.Jitter, c.interval/10)
	c.batchTimeout = orDefault(o.BatchTimeout, defaultBatchTimeout)
	c.leaseTTL = orDefault(o.LeaseTTL, defaultLeaseTTL)
	switch {
	case o.MaxRetries == 0:
		c.maxRetries = defaultMaxRetries
	case o.MaxRetries > 0:
		c.maxRetries = o.MaxRetries
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c, nil
}

// orDefault returns def for zero, 0 for a negative d (turned off), and d
// otherwise.
func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}
