package dialect

import (
	"errors"
	"fmt"
	"strconv"
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
		// written are passed over, not waited for. ARRAY(...) makes them an
		// InitPlan, so the outer statement reaches the rows through the
		// primary key (an IN subquery may be planned as a hash join over a
		// sequential scan of the whole table) and re-checks the expiry
		// condition on the locked rows.
		n := d.names(t)
		candidates := func(cond string) string {
			return fmt.Sprintf("ARRAY(SELECT %[1]s FROM %[2]s WHERE %[3]s >= $1 AND %[3]s <= $2%[4]s AND %[1]s <> $3 "+
				"ORDER BY %[3]s LIMIT %[5]s FOR UPDATE SKIP LOCKED)", n.key, n.table, n.expiry, cond, strconv.Itoa(batch))
		}
		hasData := " AND " + n.data + " IS NOT NULL"
		return SweepStatements{
			Clear: fmt.Sprintf("UPDATE %[1]s SET %[2]s = NULL WHERE %[3]s = ANY(%[4]s) AND %[5]s <= $2%[6]s RETURNING %[5]s",
				n.table, n.data, n.key, candidates(hasData), n.expiry, hasData),
			Delete: fmt.Sprintf("DELETE FROM %[1]s WHERE %[2]s = ANY(%[3]s) AND %[4]s <= $2 RETURNING %[4]s",
				n.table, n.key, candidates(""), n.expiry),
			Returning: true,
		}
	},
})

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
