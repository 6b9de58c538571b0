package dialect

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	sq "github.com/Masterminds/squirrel"
	"modernc.org/sqlite"

	"github.com/visitsession/visitsession/visit"
)

// SQLite returns the dialect for SQLite 3.42 and later through
// modernc.org/sqlite (driver name "sqlite"), pure Go.
//
// Instants are INTEGER microseconds since the Unix epoch: they compare
// correctly, keep microseconds and have no 2038 limit. Migrate rewrites
// text timestamps left by older writers into that form. Use a DSN that
// sets busy_timeout and WAL for every pooled connection, as
// [SQLiteFileDSN] returns.
// The locked mode's transaction takes the database's write lock with its
// first statement, an UPDATE that changes no row (Statements.TakeLock), as
// BEGIN IMMEDIATE would, in a database/sql transaction that runs the
// statements prepared once per connection. Migrations run in BEGIN
// IMMEDIATE. The sweeper batches through a rowid subquery. In WAL mode the
// engine's reads outside a transaction run detached from their context's
// cancellation once it is checked (DetachReads): a read there never waits
// for a writer, and watching the context would cost more than the read.
func SQLite() Dialect { return sqliteDialect }

// SQLite result codes (primary codes are the low byte of extended codes).
const (
	sqliteBusy   = 5
	sqliteLocked = 6
	// Extended codes of SQLITE_CONSTRAINT for key violations.
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
)

var sqliteDialect = newDialect(spec{
	name:        "sqlite",
	placeholder: sq.Question,
	quoteChar:   '"',
	types: map[visit.Column]string{
		visit.ColKey:     "VARCHAR(40) NOT NULL",
		visit.ColData:    "BLOB NULL",
		visit.ColCreated: "INTEGER NOT NULL",
		visit.ColExpiry:  "INTEGER NOT NULL",
		visit.ColVersion: "INTEGER NOT NULL DEFAULT 0",
	},
	added: map[visit.Column]string{
		visit.ColData:    "BLOB NULL",
		visit.ColCreated: "INTEGER NOT NULL DEFAULT 0",
		visit.ColExpiry:  "INTEGER NOT NULL DEFAULT 0",
		visit.ColVersion: "INTEGER NOT NULL DEFAULT 0",
	},
	ifNotExistsIndex: true,
	schemaOnIndex:    true,
	transactional:    true,
	prepare:          true,
	takeLock:         true,
	ddl:              Lock{Begin: "BEGIN IMMEDIATE", Commit: "COMMIT", Rollback: "ROLLBACK"},
	detachReads:      "PRAGMA journal_mode",
	detachedAnswer:   "wal",
	encodeTime:       func(t time.Time) any { return t.UnixMicro() },
	decodeTime: func(src any) (time.Time, error) {
		switch v := src.(type) {
		case int64:
			return time.UnixMicro(v).UTC(), nil
		case float64:
			return time.UnixMicro(int64(v)).UTC(), nil
		case string:
			return parseSQLiteText(v)
		case []byte:
			return parseSQLiteText(string(v))
		}
		return decodeTimeValue(src)
	},
	classify: func(err error) Class {
		var sErr *sqlite.Error
		if !errors.As(err, &sErr) {
			return Other
		}
		code := sErr.Code()
		switch {
		case code == sqliteConstraintPrimaryKey || code == sqliteConstraintUnique:
			return Duplicate
		case code&0xff == sqliteBusy || code&0xff == sqliteLocked:
			return Retryable
		}
		return Other
	},
	columnsQuery: func(schema, table string) (string, []any) {
		if schema == "" {
			return "SELECT name FROM pragma_table_info(?)", []any{table}
		}
		return "SELECT name FROM pragma_table_info(?, ?)", []any{table, schema}
	},
	indexQuery: func(schema, table, column string) (string, []any) {
		if schema == "" {
			return "SELECT count(*) FROM pragma_index_list(?) AS il, pragma_index_info(il.name) AS ii " +
				"WHERE ii.seqno = 0 AND ii.name = ?", []any{table, column}
		}
		return "SELECT count(*) FROM pragma_index_list(?, ?) AS il, pragma_index_info(il.name, ?) AS ii " +
			"WHERE ii.seqno = 0 AND ii.name = ?", []any{table, schema, schema, column}
	},
	normalize: func(d *sqlDialect, t visit.Table) []string {
		// Text written by other tools ("2006-01-02 15:04:05.999999",
		// optionally with a zone) compares wrongly with integers; rewrite
		// it as microseconds (SQLite's date functions keep milliseconds), or 0 (long expired) when unparseable.
		var out []string
		for _, c := range []string{t.Created, t.Expiry} {
			q := d.Quote(c)
			out = append(out, "UPDATE "+d.Quote(t.Name)+" SET "+q+
				" = COALESCE(unixepoch("+q+") * 1000000 + CAST(ROUND((unixepoch("+q+", 'subsec') - unixepoch("+q+")) * 1000) AS INTEGER) * 1000, 0)"+
				" WHERE typeof("+q+") = 'text'")
		}
		return out
	},
	sweep: func(d *sqlDialect, t visit.Table, batch int) SweepStatements {
		// One statement holds the database's write lock from the choice of
		// the rows to the change, so no session write comes in between.
		n := d.names(t)
		candidates := func(cond string) string {
			return fmt.Sprintf("SELECT rowid FROM %[1]s WHERE %[2]s >= ?1 AND %[2]s <= ?2%[3]s AND %[4]s <> ?3 "+
				"ORDER BY %[2]s LIMIT %[5]s", n.table, n.expiry, cond, n.key, strconv.Itoa(batch))
		}
		hasData := " AND " + n.data + " IS NOT NULL"
		return SweepStatements{
			Clear: fmt.Sprintf("UPDATE %[1]s SET %[2]s = NULL WHERE rowid IN (%[3]s) AND %[4]s <= ?2%[5]s RETURNING %[4]s",
				n.table, n.data, candidates(hasData), n.expiry, hasData),
			Delete: fmt.Sprintf("DELETE FROM %[1]s WHERE rowid IN (%[2]s) AND %[3]s <= ?2 RETURNING %[3]s",
				n.table, candidates(""), n.expiry),
			Returning: true,
		}
	},
})

// parseSQLiteText reads a text timestamp as written by other SQLite tools.
func parseSQLiteText(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{
		"2006-01-02 15:04:05.999999999-07:00",
		"2006-01-02T15:04:05.999999999-07:00",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02T15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999",
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04",
		"2006-01-02",
	} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMicro(n).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("dialect: time %q: not a timestamp", s)
}
