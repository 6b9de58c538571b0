package dialect

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	sq "github.com/Masterminds/squirrel"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/visitsession/visitsession/visit"
)

// Postgres returns the dialect for PostgreSQL 12 and later through
// github.com/jackc/pgx/v5/stdlib (driver name "pgx").
//
// Instants are timestamptz bound as UTC time.Time values. The locked mode
// uses SELECT ... FOR UPDATE in a database/sql transaction. The sweeper
// batches with a FOR UPDATE SKIP LOCKED subquery, so sweepers on several
// instances never wait for each other.
func Postgres() Dialect { return postgres }

var postgres = newDialect(spec{
	name:        "postgres",
	placeholder: sq.Dollar,
	quoteChar:   '"',
	types: map[visit.Column]string{
		visit.ColKey:     "VARCHAR(40) NOT NULL",
		visit.ColData:    "BYTEA NULL",
		visit.ColCreated: "TIMESTAMPTZ NOT NULL",
		visit.ColExpiry:  "TIMESTAMPTZ NOT NULL",
		visit.ColVersion: "BIGINT NOT NULL DEFAULT 0",
	},
	added: map[visit.Column]string{
		visit.ColData:    "BYTEA NULL",
		visit.ColCreated: "TIMESTAMPTZ NOT NULL DEFAULT 'epoch'",
		visit.ColExpiry:  "TIMESTAMPTZ NOT NULL DEFAULT 'epoch'",
		visit.ColVersion: "BIGINT NOT NULL DEFAULT 0",
	},
	ifNotExistsIndex: true,
	transactional:    true,
	lockSuffix:       "FOR UPDATE",
	encodeTime:       func(t time.Time) any { return t.UTC() },
	decodeTime:       decodeTimeValue,
	classify: func(err error) Class {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			return Other
		}
		switch pgErr.Code {
		case "23505": // unique_violation
			return Duplicate
		case "40001", "40P01", "55P03": // serialization_failure, deadlock_detected, lock_not_available
			return Retryable
		}
		return Other
	},
	columnsQuery: func(schema, table string) (string, []any) {
		return "SELECT column_name FROM information_schema.columns " +
			"WHERE table_schema = COALESCE($1::text, current_schema()) AND table_name = $2", []any{nullable(schema), table}
	},
	indexQuery: func(schema, table, column string) (string, []any) {
		return "SELECT count(*) FROM pg_index i " +
				"JOIN pg_class c ON c.oid = i.indrelid " +
				"JOIN pg_namespace n ON n.oid = c.relnamespace " +
				"JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] " +
				"WHERE n.nspname = COALESCE($1::text, current_schema()) AND c.relname = $2 AND a.attname = $3",
			[]any{nullable(schema), table, column}
	},
	sweep: func(d *sqlDialect, t visit.Table, batch int) SweepStatements {
		// A batch's candidates come from a range scan of the expiry index,
		// locked with SKIP LOCKED so that other sweepers and sessions being
		// written are passed over, not waited for. The statement then
		// reaches each locked row by its tableoid and ctid, a TID scan
		// instead of a primary-key lookup per row, and re-checks the
		// expiry condition.
		n := d.names(t)
		candidates := func(cond string) string {
			return fmt.Sprintf("WITH batch AS MATERIALIZED (SELECT tableoid AS toid, ctid AS tid FROM %[1]s "+
				"WHERE %[2]s >= $1 AND %[2]s <= $2%[3]s AND %[4]s <> $3 ORDER BY %[2]s LIMIT %[5]s FOR UPDATE SKIP LOCKED)",
				n.table, n.expiry, cond, n.key, strconv.Itoa(batch))
		}
		hasData := " AND t." + n.data + " IS NOT NULL"
		match := fmt.Sprintf("WHERE t.ctid = batch.tid AND t.tableoid = batch.toid AND t.%[1]s <= $2 AND t.%[2]s <> $3",
			n.expiry, n.key)
		// The statement answers with one row, the count and the largest
		// expiry of the changed rows, rather than one row per changed row.
		summary := fmt.Sprintf(" RETURNING t.%[1]s) SELECT count(*), max(%[1]s) FROM changed", n.expiry)
		return SweepStatements{
			Clear: candidates(" AND "+n.data+" IS NOT NULL") +
				fmt.Sprintf(", changed AS (UPDATE %s AS t SET %s = NULL FROM batch %s%s", n.table, n.data, match, hasData) + summary,
			Delete: candidates("") +
				fmt.Sprintf(", changed AS (DELETE FROM %s AS t USING batch %s", n.table, match) + summary,
			Summary: true,
			// Without statistics, and in the generic plan that a cached
			// prepared statement switches to after five executions, the
			// range from $1 to $2 is estimated at 0.5% of the table, and
			// the planner prefers a bitmap scan of the whole range plus a
			// sort to an ordered index scan that stops after a batch: on a
			// large backlog, every batch would then read and sort all of
			// it. Turning those plans off, and joins other than a nested
			// loop, on the sweep's connection leaves the index scan and
			// the TID scan as the only sensible plan. Reset restores what
			// RESET would, in one statement.
			Setup: "SELECT " + joinSweepSettings(func(name string) string { return "set_config('" + name + "', 'off', false)" }),
			Reset: "SELECT set_config(name, reset_val, false) FROM pg_settings WHERE name IN (" +
				joinSweepSettings(func(name string) string { return "'" + name + "'" }) + ")",
		}
	},
})

// pgSweepSettings are the planner settings a PostgreSQL sweep turns off.
var pgSweepSettings = []string{"enable_seqscan", "enable_bitmapscan", "enable_sort", "enable_hashjoin", "enable_mergejoin"}

// joinSweepSettings joins f of each of pgSweepSettings with commas.
func joinSweepSettings(f func(name string) string) string {
	parts := make([]string, len(pgSweepSettings))
	for i, name := range pgSweepSettings {
		parts[i] = f(name)
	}
	return strings.Join(parts, ", ")
}

// decodeTimeValue accepts a driver's time.Time and returns it in UTC.
func decodeTimeValue(src any) (time.Time, error) {
	switch v := src.(type) {
	case time.Time:
		return v.UTC(), nil
	case nil:
		return time.Time{}, errors.New("dialect: NULL time")
	}
	return time.Time{}, fmt.Errorf("dialect: unexpected time value of type %T", src)
}
