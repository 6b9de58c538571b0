package dialect

import (
	"database/sql"
	"time"

	sq "github.com/Masterminds/squirrel"

	"github.com/visitsession/visitsession/visit"
)

// Dialect describes one database. Implementations are immutable and safe
// for concurrent use.
type Dialect interface {
	visit.SchemaDialect

	// Placeholder returns the squirrel placeholder format of the driver.
	Placeholder() sq.PlaceholderFormat
	// Quote returns name quoted as an identifier. A qualified name
	// ("schema.table") is quoted part by part. The name must have passed
	// [visit.ValidateIdent]; Quote does no escaping of its own.
	Quote(name string) string
	// Statements returns every statement the session engine runs on t.
	// It fails only if t does not validate.
	Statements(t visit.Table) (Statements, error)
	// Sweep returns the batched statements the sweeper runs on t, each
	// touching at most batch rows.
	Sweep(t visit.Table, batch int) (SweepStatements, error)

	// EncodeTime returns the driver argument for instant t, which the
	// engine has already truncated to microseconds.
	EncodeTime(t time.Time) any
	// DecodeTime converts a scanned time column to a UTC instant.
	DecodeTime(src any) (time.Time, error)

	// Classify sorts a driver error: [Duplicate] for a unique-key violation,
	// [Retryable] for a serialization failure, deadlock, lock wait timeout
	// or busy database, [Other] for everything else (including nil).
	Classify(err error) Class

	// Lock returns how this database takes a row lock for the locked
	// concurrency mode.
	Lock() Lock
	// Prepare reports whether the engine should prepare its statements
	// once per connection rather than send them as text each time; true
	// where preparing saves a round trip or parsing on every call.
	Prepare() bool
	// DetachReads returns the query that tells whether the engine may run
	// a read outside a transaction (a load, a merge's reload, the read of
	// a renewed session's forward) detached from its context's
	// cancellation, once it has checked that the context is not done, and
	// the value of the query's one column that says it may (compared
	// without regard to case); query is empty where reads always watch
	// their context. A read may run detached where it runs in the
	// application's process and cannot wait for a writer, so that
	// watching the context — a goroutine per statement in database/sql and
	// in the driver — would cost more than the read and could cut nothing
	// short; the context's values still reach the driver. SQLite asks for
	// the journal mode and detaches in WAL mode, where a reader waits only
	// for the recovery of a crashed writer's log, within busy_timeout;
	// PostgreSQL and MySQL never detach: their reads cross a network,
	// which a cancelled request must be able to abandon.
	DetachReads() (query, detached string)
}

// Class is the kind of a driver error, as [Dialect.Classify] sees it.
type Class int

const (
	// Other is any error that is neither a duplicate key nor retryable.
	Other Class = iota
	// Duplicate is a primary- or unique-key violation.
	Duplicate
	// Retryable is a transient failure worth running the statement or
	// transaction again: serialization failure, deadlock, lock wait
	// timeout, a busy or locked database.
	Retryable
)

// String returns "other", "duplicate" or "retryable".
func (c Class) String() string {
	switch c {
	case Duplicate:
		return "duplicate"
	case Retryable:
		return "retryable"
	}
	return "other"
}

// Lock describes how the locked concurrency mode holds a row.
type Lock struct {
	// Begin, when not empty, is the statement that opens the locking
	// transaction on a dedicated connection, closed with Commit or
	// Rollback, for a database whose lock only such a statement takes.
	// When empty, the engine uses a database/sql transaction, which runs
	// the statements prepared once per connection, and takes the lock with
	// LoadLocked, after Statements.TakeLock when there is one. The built-in
	// dialects leave it empty.
	Begin string
	// Commit and Rollback close a transaction opened with Begin.
	Commit, Rollback string
}

// Statements holds the SQL text of every statement the session engine runs,
// in the dialect's placeholder format. The comment of each field gives the
// order of its arguments. Times are arguments made by [Dialect.EncodeTime].
//
// A row whose version is [ForwardVersion] is not a session but a forward,
// written by Forward: it sends a renewed session's old key to its new one
// for a short while. Load and LoadLocked return it like any row; the other
// statements never change it.
type Statements struct {
	// Load reads a live session: args key, now; columns data, created,
	// expiry, version.
	Load string
	// LoadLocked is Load that also locks the row until the transaction
	// ends (FOR UPDATE where the database has it).
	LoadLocked string
	// TakeLock, when not empty, is the first statement of the locked
	// mode's transaction, before LoadLocked, for a database where
	// LoadLocked takes no lock: on SQLite, an UPDATE that changes no row
	// but takes the database's write lock, as BEGIN IMMEDIATE does, so
	// that the transaction never has to turn a read into a write. No args.
	TakeLock string
	// Insert creates a session with version 1: args key, data, created,
	// expiry.
	Insert string
	// Update replaces the data of a live session at a given version, moves
	// expiry forward only, and bumps the version: args data, expiry,
	// expiry, key, version, now.
	Update string
	// UpdateAny is Update without the version check (last-write-wins):
	// args data, expiry, expiry, key, now.
	UpdateAny string
	// Renew moves a live session at a given version to a new key, with
	// its data, forward-only expiry and a bumped version: args newKey,
	// data, expiry, expiry, key, version, now.
	Renew string
	// Touch moves the expiry of a live session forward, and only forward,
	// leaving data and version alone: args expiry, key, expiry, now.
	Touch string
	// End clears the data of a live session and sets its expiry to now, so
	// that the visit row stays as history: args now, key, now.
	End string
	// Delete removes a session's row: args key.
	Delete string
	// Forward creates a forward row with version ForwardVersion: args
	// key, data, created, expiry.
	Forward string
}

// ForwardVersion is the version of a forward row, see [Statements]. The
// versions of sessions start at 1 (0 for rows written before the version
// column existed) and only grow.
const ForwardVersion = -1

// SweepStatements holds the sweeper's statements for one table and batch
// size, in the dialect's placeholder format.
//
// A batch statement touches at most the batch size of rows, in expiry
// order, re-checks the expiry condition itself (so a session extended
// while the sweep runs survives), and never touches the row whose key is
// its exclude argument (the sweeper's lease row). It reads only rows whose
// expiry lies between two bounds, from and to, both inclusive, walking the
// expiry index upward from from: the sweeper starts a run at the oldest
// instant it needs and moves from up after each batch, so a batch never
// rescans the rows that earlier batches cleared or deleted.
//
// There are three ways to learn where the next batch starts. Where
// Summary is true, Clear and Delete are queries that return one row: the
// number of rows they changed and the largest expiry among them (NULL when
// none). Where Returning is true, they return the expiry of every row they
// changed, one row each. In both cases the sweeper passes the cutoff as
// to, and the largest expiry becomes the next from. Otherwise the sweeper
// first runs ClearBound or DeleteBound, passes the expiry it returns (or
// the cutoff, when it returns no row) as to, counts the changed rows from
// the result, and starts the next batch at that to.
type SweepStatements struct {
	// Clear sets to NULL the data of at most a batch of rows with
	// from <= expiry <= to that still hold data, keeping the rows: args
	// from, to, exclude.
	Clear string
	// Delete removes at most a batch of rows with from <= expiry <= to:
	// args from, to, exclude. The sweeper passes a cutoff of now minus the
	// retention period.
	Delete string
	// Summary reports that Clear and Delete return a single row: the count
	// of changed rows and their largest expiry.
	Summary bool
	// Returning reports that Clear and Delete return one row per changed
	// row: its expiry.
	Returning bool
	// ClearBound and DeleteBound, set where Summary and Returning are
	// false, return the
	// expiry of the last row the next Clear or Delete batch would touch,
	// the batch-th in expiry order, or no row when fewer rows qualify:
	// args from, cutoff, exclude.
	ClearBound, DeleteBound string
	// Setup, when not empty, is run once at the start of a sweep on the
	// connection that the sweep then holds for all its batches: a
	// statement that sets session options, such as planner settings that
	// keep the batches on the expiry index whatever the statistics or a
	// cached generic plan would suggest. Reset undoes it before the
	// connection goes back to the pool; a connection whose Reset fails is
	// closed instead. Their results, if any, are discarded. They take no
	// arguments.
	Setup, Reset string
	// Isolation is the isolation level of each batch's transaction. The
	// sweeper runs a batch (bound query and statement) in a transaction
	// when Isolation is not sql.LevelDefault; otherwise the batch
	// statement runs on its own.
	Isolation sql.IsolationLevel
	// Lease holds the statements on the sweeper's lease row.
	Lease LeaseStatements
}

// LeaseStatements read and write one row of the visit table that serves as
// a lease among sweepers: its key is fixed, its data names the holder, its
// expiry is the instant the lease ends, and every write bumps its version.
// Rows-affected counts of the updates are 1 on success and 0 otherwise.
type LeaseStatements struct {
	// Acquire takes the lease when it has ended or already belongs to the
	// caller, setting holder and end: args holder, end, key, now, holder.
	Acquire string
	// Insert creates the lease row, failing with a duplicate key when it
	// exists: args key, holder, now, end.
	Insert string
	// Read returns the holder and end of the lease: args key; columns data,
	// expiry.
	Read string
	// Renew moves the end of a lease the caller still holds, also to now to
	// release it: args end, key, holder.
	Renew string
}
