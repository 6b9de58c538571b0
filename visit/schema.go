package visit

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
)

// Querier is the narrow executor the library runs SQL through. *sql.DB,
// *sql.Tx and *sql.Conn all satisfy it.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ Querier = (*sql.DB)(nil)
	_ Querier = (*sql.Tx)(nil)
	_ Querier = (*sql.Conn)(nil)
)

// SchemaDialect is the part of a dialect that describes the visit table's
// DDL. Every dialect.Dialect satisfies it.
type SchemaDialect interface {
	// Name returns the dialect's short name, such as "postgres".
	Name() string
	// CreateTable returns the statements that create t and its expiry index.
	CreateTable(t Table) []string
	// AddColumn returns the statement that adds column c to an existing t.
	AddColumn(t Table, c Column) string
	// CreateExpiryIndex returns the statement that adds the expiry index.
	CreateExpiryIndex(t Table) string
	// NormalizeTimes returns statements, possibly none, that rewrite
	// timestamps an older writer stored in a form the library does not
	// compare correctly. Each must be idempotent.
	NormalizeTimes(t Table) []string
	// ColumnsQuery returns a query listing the names of t's columns, one
	// per row; no rows means the table does not exist.
	ColumnsQuery(t Table) (string, []any)
	// ExpiryIndexQuery returns a query whose single row counts the indexes
	// of t whose first column is the expiry column.
	ExpiryIndexQuery(t Table) (string, []any)
	// TransactionalDDL reports whether DDL statements can run inside a
	// transaction and be rolled back.
	TransactionalDDL() bool
	// DDLTransaction returns, when not empty, the statements that open,
	// commit and roll back the migration's transaction on a dedicated
	// connection — for databases whose default transaction would fail
	// rather than wait when another writer gets in between its catalog
	// reads and its DDL (SQLite's "BEGIN IMMEDIATE"). Empty means a
	// database/sql transaction.
	DDLTransaction() (begin, commit, rollback string)
}

// ErrNoKeyColumn reports an existing table that lacks the key column: it
// cannot be upgraded in place, since the key is its primary key.
var ErrNoKeyColumn = errors.New("visit: existing table has no key column")

// Inspection is what [Inspect] found out about the table.
type Inspection struct {
	// Exists reports whether the table exists.
	Exists bool
	// Missing lists the columns the table lacks, in CREATE TABLE order.
	Missing []Column
	// HasExpiryIndex reports whether an index starts with the expiry column.
	HasExpiryIndex bool
}

// Inspect reads the catalog to find out whether t exists, which of its
// columns are missing and whether expiry is indexed. Column names are
// compared without case.
func Inspect(ctx context.Context, q Querier, d SchemaDialect, t Table) (Inspection, error) {
	var in Inspection
	if err := t.Validate(); err != nil {
		return in, err
	}
	query, args := d.ColumnsQuery(t)
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return in, fmt.Errorf("visit: inspect %s: list columns: %w", t.Name, err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return in, fmt.Errorf("visit: inspect %s: scan column: %w", t.Name, err)
		}
		have[strings.ToLower(name)] = true
	}
	if err := rows.Err(); err != nil {
		return in, fmt.Errorf("visit: inspect %s: list columns: %w", t.Name, err)
	}
	if len(have) == 0 {
		return in, nil
	}
	in.Exists = true
	for _, c := range Columns {
		if !have[strings.ToLower(t.ColumnName(c))] {
			in.Missing = append(in.Missing, c)
		}
	}
	query, args = d.ExpiryIndexQuery(t)
	var n int
	if err := q.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return in, fmt.Errorf("visit: inspect %s: find expiry index: %w", t.Name, err)
	}
	in.HasExpiryIndex = n > 0
	return in, nil
}

// Plan returns the statements that [Migrate] would run to bring t up to
// date, without running them: all of CREATE TABLE for a missing table,
// otherwise one ADD COLUMN per missing column, the expiry index if absent,
// and the dialect's timestamp normalization. It returns [ErrNoKeyColumn]
// for an existing table without the key column.
func Plan(ctx context.Context, q Querier, d SchemaDialect, t Table) ([]string, error) {
	in, err := Inspect(ctx, q, d, t)
	if err != nil {
		return nil, err
	}
	return planFor(in, d, t)
}

func planFor(in Inspection, d SchemaDialect, t Table) ([]string, error) {
	if !in.Exists {
		return d.CreateTable(t), nil
	}
	var stmts []string
	for _, c := range in.Missing {
		if c == ColKey {
			return nil, fmt.Errorf("%w: table %s has no column %s", ErrNoKeyColumn, t.Name, t.Key)
		}
		stmts = append(stmts, d.AddColumn(t, c))
	}
	if !in.HasExpiryIndex {
		stmts = append(stmts, d.CreateExpiryIndex(t))
	}
	return append(stmts, d.NormalizeTimes(t)...), nil
}

// Migrate creates t, or upgrades an existing t by adding only what it
// lacks, and returns the statements it ran. It is idempotent: on an
// up-to-date table it runs only the dialect's (idempotent) normalization.
// On databases with transactional DDL the whole upgrade runs in one
// transaction and is rolled back if a statement fails.
func Migrate(ctx context.Context, db *sql.DB, d SchemaDialect, t Table) ([]string, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if !d.TransactionalDDL() {
		stmts, err := Plan(ctx, db, d, t)
		if err != nil {
			return nil, err
		}
		return stmts, execAll(ctx, db, t, stmts)
	}
	if begin, commit, rollback := d.DDLTransaction(); begin != "" {
		return migrateOnConn(ctx, db, d, t, begin, commit, rollback)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("visit: migrate %s: begin: %w", t.Name, err)
	}
	stmts, err := Plan(ctx, tx, d, t)
	if err == nil {
		err = execAll(ctx, tx, t, stmts)
	}
	if err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("visit: migrate %s: commit: %w", t.Name, err)
	}
	return stmts, nil
}

// migrateOnConn runs the migration in a transaction opened with begin on a
// dedicated connection.
func migrateOnConn(ctx context.Context, db *sql.DB, d SchemaDialect, t Table, begin, commit, rollback string) ([]string, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("visit: migrate %s: connect: %w", t.Name, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		// A driver may report a cancelled BEGIN that did run: the pool
		// discards the connection rather than risk reusing it inside a
		// transaction.
		discard(conn)
		return nil, fmt.Errorf("visit: migrate %s: begin: %w", t.Name, err)
	}
	stmts, err := Plan(ctx, conn, d, t)
	if err == nil {
		err = execAll(ctx, conn, t, stmts)
	}
	if err == nil {
		if _, err = conn.ExecContext(ctx, commit); err != nil {
			err = fmt.Errorf("visit: migrate %s: commit: %w", t.Name, err)
		}
	}
	if err != nil {
		endConn(ctx, conn, rollback)
		return nil, err
	}
	return stmts, nil
}

// endConn rolls back conn's transaction, and has the pool discard the
// connection when even that fails.
func endConn(ctx context.Context, conn *sql.Conn, rollback string) {
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), rollback); err != nil {
		discard(conn)
	}
}

// discard marks conn as broken, so that the pool closes it on release.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}

func execAll(ctx context.Context, q Querier, t Table, stmts []string) error {
	for i, s := range stmts {
		if _, err := q.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("visit: migrate %s: statement %d of %d: %w", t.Name, i+1, len(stmts), err)
		}
	}
	return nil
}
