package dialect

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	sq "github.com/Masterminds/squirrel"
	"github.com/go-sql-driver/mysql"

	"github.com/visitsession/visitsession/visit"
)

// MySQL returns the dialect for MySQL 8 and MariaDB 10.6 and later through
// github.com/go-sql-driver/mysql (driver name "mysql").
//
// Instants are DATETIME(6) columns bound as UTC literals
// ("2006-01-02 15:04:05.000000"), so neither the DSN's loc nor the
// connection's time_zone shifts them, and DATETIME has no year-2038 limit.
// The DSN may leave parseTime off; both forms are scanned. The engine
// prepares its statements once per connection, so each call is a single
// COM_STMT_EXECUTE round trip whether or not the DSN sets
// interpolateParams. The sweeper batches with ORDER BY expiry LIMIT n.
func MySQL() Dialect { return mysqlDialect }

var mysqlDialect = newDialect(spec{
	name:        "mysql",
	placeholder: sq.Question,
	quoteChar:   '`',
	types: map[visit.Column]string{
		visit.ColKey:     "VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL",
		visit.ColData:    "MEDIUMBLOB NULL",
		visit.ColCreated: "DATETIME(6) NOT NULL",
		visit.ColExpiry:  "DATETIME(6) NOT NULL",
		visit.ColVersion: "BIGINT NOT NULL DEFAULT 0",
	},
	added: map[visit.Column]string{
		visit.ColData:    "MEDIUMBLOB NULL",
		visit.ColCreated: "DATETIME(6) NOT NULL DEFAULT '1970-01-01 00:00:00'",
		visit.ColExpiry:  "DATETIME(6) NOT NULL DEFAULT '1970-01-01 00:00:00'",
		visit.ColVersion: "BIGINT NOT NULL DEFAULT 0",
	},
	tableOptions: " ENGINE=InnoDB",
	keyHint:      " FORCE INDEX (PRIMARY)",
	indexInTable: true,
	prepare:      true,
	lockSuffix:   "FOR UPDATE",
	encodeTime:   func(t time.Time) any { return formatMySQLTime(t) },
	decodeTime: func(src any) (time.Time, error) {
		switch v := src.(type) {
		case time.Time:
			// parseTime=true: the driver read the DATETIME's wall clock in
			// the DSN's loc; the wall clock is UTC.
			return time.Date(v.Year(), v.Month(), v.Day(), v.Hour(), v.Minute(), v.Second(), v.Nanosecond(), time.UTC), nil
		case []byte:
			return parseMySQLTime(v)
		case string:
			return parseUTC(v)
		}
		return decodeTimeValue(src)
	},
	classify: func(err error) Class {
		var myErr *mysql.MySQLError
		if !errors.As(err, &myErr) {
			return Other
		}
		switch myErr.Number {
		case 1062: // ER_DUP_ENTRY
			return Duplicate
		case 1213, 1205: // ER_LOCK_DEADLOCK (also Galera certification failure), ER_LOCK_WAIT_TIMEOUT
			return Retryable
		}
		return Other
	},
	columnsQuery: func(schema, table string) (string, []any) {
		return "SELECT column_name FROM information_schema.columns " +
			"WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?", []any{nullable(schema), table}
	},
	indexQuery: func(schema, table, column string) (string, []any) {
		return "SELECT count(*) FROM information_schema.statistics " +
				"WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND column_name = ? AND seq_in_index = 1",
			[]any{nullable(schema), table, column}
	},
	sweep: func(d *sqlDialect, t visit.Table, batch int) SweepStatements {
		// Neither MySQL nor MariaDB has UPDATE ... RETURNING, so a bound
		// query finds where a batch ends before the batch runs. Both run in
		// one READ COMMITTED transaction: InnoDB then takes no gap locks
		// and releases at once the locks of rows it reads but does not
		// change, so small batches do not deadlock with session writes the
		// way one large DELETE ... WHERE expiry < ? does. Galera
		// certification failures come back as deadlocks, which are retried.
		n := d.names(t)
		rangeOf := func(cond string) string {
			return fmt.Sprintf("%[1]s >= ? AND %[1]s <= ?%[2]s AND %[3]s <> ? ORDER BY %[1]s", n.expiry, cond, n.key)
		}
		clearRange, deleteRange := rangeOf(" AND "+n.data+" IS NOT NULL"), rangeOf("")
		limit := " LIMIT " + strconv.Itoa(batch)
		bound := " LIMIT 1 OFFSET " + strconv.Itoa(batch-1)
		return SweepStatements{
			Clear:       "UPDATE " + n.table + " SET " + n.data + " = NULL WHERE " + clearRange + limit,
			ClearBound:  "SELECT " + n.expiry + " FROM " + n.table + " WHERE " + clearRange + bound,
			Delete:      "DELETE FROM " + n.table + " WHERE " + deleteRange + limit,
			DeleteBound: "SELECT " + n.expiry + " FROM " + n.table + " WHERE " + deleteRange + bound,
			Isolation:   sql.LevelReadCommitted,
		}
	},
})
