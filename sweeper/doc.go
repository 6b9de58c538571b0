// Package sweeper removes expired sessions from the visit table, in small
// batches that never hold many locks, under a lease that lets any number of
// application instances run it without sweeping twice, even on a
// multi-primary MariaDB Galera cluster.
//
// Create a [Sweeper] with [New], then either call [Sweeper.SweepOnce] (from
// a cron job, for example the "visitsession sweep --once" command) or run
// [Sweeper.Run] in a goroutine of each instance:
//
//	sw, err := sweeper.New(db, dialect.Postgres(), visit.Default(), sweeper.Options{})
//	if err != nil {
//		return err
//	}
//	go sw.Run(ctx) // returns once ctx is cancelled and the batch in flight is done
//
// # Policies
//
// By default a row is deleted as soon as its visit has expired.
// [Options.DeleteAfter] keeps expired rows for a retention period, and
// [Options.ClearData] sets the data of expired visits to NULL while keeping
// their rows, as TurboGears' visit tracking does; the two combine ("clear
// at expiry, delete after 90 days"), or ClearData with DeleteAfter set to
// [Never] keeps every row forever.
//
// # Batches
//
// Each batch is one statement (on MySQL and MariaDB, one short READ
// COMMITTED transaction of a bound query and one statement) that changes at
// most [Options.BatchSize] rows and checks the expiry condition in the same
// statement that changes them: a session extended while a sweep runs is
// left alone, and a row cleared or deleted by another sweeper is not
// counted twice. A run goes on batch after batch, with a short
// [Options.Pause] between them, until a batch finds fewer than BatchSize
// rows to sweep. This avoids the three classic failures of session-table cleanup:
// one DELETE over every expired row, whose long lock footprint deadlocks
// with session writes on MySQL; an unbounded DELETE run by every instance
// at once; and one UPDATE that clears all expired data in a single
// transaction.
//
// Batches walk the expiry index upward from a lower bound that moves past
// each batch, so no batch rescans the rows its predecessors cleared or
// deleted: cleared rows keep their expiry, and a scan from the oldest
// expiry would step over more of them with each batch, quadratic in the
// backlog. Across runs, a clear pass starts one hour before the cutoff of
// the previous completed pass of the same Sweeper, not at the oldest
// expiry; the first pass of a Sweeper, and then one pass a day, start from
// the oldest expiry, to catch rows that were locked during earlier passes
// or got data after expiring (from a writer whose clock lags by more than
// the hour). The tests check with EXPLAIN that every batch statement is an
// index range scan on each database.
//
// The statements per database come from [dialect.Dialect.Sweep]:
// PostgreSQL picks a batch with FOR UPDATE SKIP LOCKED, so concurrent
// sweepers and session writes are passed over rather than waited for, and
// answers each batch with one row (its count and latest expiry); a run
// holds one connection of the pool, with planner settings that keep every
// batch on the expiry index, for its batches and its lease renewals, and
// resets them before giving it back, so a batch is one round trip; MySQL and MariaDB use ORDER BY expiry LIMIT n; SQLite uses a rowid
// subquery, under the database's single write lock.
//
// # Lease
//
// Instances coordinate through a lease that is itself a row of the visit
// table, so it needs no other table, works wherever the table is writable,
// and replicates like every session: MariaDB's GET_LOCK is local to one
// node of a Galera cluster and would let every node sweep at once. The
// lease row has the key [LeaseKey], which no session key can equal; its
// data holds the holder's name ([Sweeper.Owner]), its expiry the end of
// the lease, and each write bumps its version.
//
// A run takes the lease with a conditional UPDATE that succeeds only when
// the lease has ended or is already the caller's, and INSERTs the row when
// it does not exist yet, where a duplicate key means another instance was
// faster. On Galera, two nodes taking the lease at once end in a
// certification failure for one of them, which that node retries and then
// finds the lease taken. A run that does not get the lease returns a
// report with Skipped set. The holder renews the lease between batches
// once a third of [Options.LeaseTTL] has passed, and releases it at the end
// of the run by setting its end to the current time. Batch statements
// never touch the lease row.
//
// The lease saves work; it is not what makes sweeping safe. Every batch is
// correct on its own, so two instances that both believe they hold the
// lease, because clocks disagree or a run outlived its lease, only share
// the work. Set LeaseTTL to a negative value to sweep without a lease.
//
// # Observability
//
// Every run produces a [Report], passed to [Options.Hook] and logged to
// [Options.Logger] with the table name, rows deleted and cleared, batches,
// errors and duration. Retryable errors (deadlocks, serialization
// failures, lock timeouts, a busy SQLite database, Galera certification
// failures, as [dialect.Dialect.Classify] sees them) are retried up to
// [Options.MaxRetries] times with backoff; [Sweeper.Run] keeps running after
// a failed run and tries again at the next interval.
//
// # Stopping
//
// Cancelling the context passed to SweepOnce or Run stops the run between
// two batches. The batch in flight is not interrupted: it commits or fails
// as a whole within [Options.BatchTimeout], the lease is released, and
// then the call returns. Run starts no goroutine of its own.
//
// # Throughput
//
// With default options a batch of 1000 rows takes about as long as the
// pause that follows it, so a long run uses the database about half the
// time, leaving it room for the application and replicas room to keep up.
// For a one-off catch-up of a large backlog, a negative Pause runs the
// batches back to back. TestHeavySweep measures rows per second that way
// while 32 workers load and update live sessions; run it with
//
//	VISITSESSION_SWEEP_ROWS=1000000 go test -run Heavy -v ./sweeper/
//
// (VISITSESSION_SWEEP_WORKERS=0 measures the sweep alone),
// and BenchmarkSweep with
//
//	go test -run '^$' -bench Sweep ./sweeper/
package sweeper
