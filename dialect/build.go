package dialect

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	sq "github.com/Masterminds/squirrel"

	"github.com/visitsession/visitsession/visit"
)

// spec is what one database file contributes: names, syntax and
// behaviours. A generic implementation turns it into a Dialect.
type spec struct {
	name        string
	placeholder sq.PlaceholderFormat
	quoteChar   byte
	// types are the column types used by CREATE TABLE.
	types map[visit.Column]string
	// added are the column definitions used by ADD COLUMN on an existing
	// table, where existing rows need a default.
	added map[visit.Column]string
	// tableOptions follows the closing parenthesis of CREATE TABLE.
	tableOptions string
	// indexInTable puts the expiry index inside CREATE TABLE.
	indexInTable bool
	// ifNotExistsIndex allows CREATE INDEX IF NOT EXISTS.
	ifNotExistsIndex bool
	// schemaOnIndex qualifies the index name, not the table, with the
	// schema in CREATE INDEX (SQLite's syntax).
	schemaOnIndex bool
	transactional bool
	prepare       bool
	// keyHint follows the table name in the session's single-row UPDATEs
	// to keep them on the primary key: MariaDB's optimizer may pick the
	// expiry index on small tables and lock a range, which deadlocks
	// against locked-mode readers.
	keyHint    string
	lockSuffix string
	// takeLock makes the locked mode's transaction take the database's
	// write lock with a write that changes no row (Statements.TakeLock).
	takeLock bool
	lock     Lock
	// ddl opens and closes the transaction of a migration, when the
	// database needs a statement of its own for it (DDLTransaction).
	ddl Lock
	// detachReads and detachedAnswer: the query, and its answer, that
	// tell whether reads may run detached from their context
	// (DetachReads).
	detachReads, detachedAnswer string
	encodeTime                  func(time.Time) any
	decodeTime                  func(any) (time.Time, error)
	classify                    func(error) Class
	columnsQuery                func(schema, table string) (string, []any)
	indexQuery                  func(schema, table, column string) (string, []any)
	normalize                   func(d *sqlDialect, t visit.Table) []string
	sweep                       func(d *sqlDialect, t visit.Table, batch int) SweepStatements
}

// sqlDialect is the single implementation of Dialect, driven by a spec.
type sqlDialect struct {
	spec
	b sq.StatementBuilderType
}

func newDialect(s spec) *sqlDialect {
	return &sqlDialect{spec: s, b: sq.StatementBuilder.PlaceholderFormat(s.placeholder)}
}

func (d *sqlDialect) Name() string                      { return d.name }
func (d *sqlDialect) Placeholder() sq.PlaceholderFormat { return d.placeholder }
func (d *sqlDialect) EncodeTime(t time.Time) any        { return d.encodeTime(t) }
func (d *sqlDialect) DecodeTime(src any) (time.Time, error) {
	return d.decodeTime(src)
}
func (d *sqlDialect) Classify(err error) Class {
	if err == nil {
		return Other
	}
	return d.classify(err)
}
func (d *sqlDialect) DetachReads() (query, detached string) {
	return d.detachReads, d.detachedAnswer
}
func (d *sqlDialect) Lock() Lock             { return d.lock }
func (d *sqlDialect) Prepare() bool          { return d.prepare }
func (d *sqlDialect) TransactionalDDL() bool { return d.transactional }
func (d *sqlDialect) DDLTransaction() (begin, commit, rollback string) {
	return d.ddl.Begin, d.ddl.Commit, d.ddl.Rollback
}

// Quote quotes each dot-separated part of name.
func (d *sqlDialect) Quote(name string) string {
	q := string(d.quoteChar)
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = q + p + q
	}
	return strings.Join(parts, ".")
}

// names holds the quoted names of a table, ready to splice.
type names struct {
	table, key, data, created, expiry, version string
}

func (d *sqlDialect) names(t visit.Table) names {
	return names{
		table:   d.Quote(t.Name),
		key:     d.Quote(t.Key),
		data:    d.Quote(t.Data),
		created: d.Quote(t.Created),
		expiry:  d.Quote(t.Expiry),
		version: d.Quote(t.Version),
	}
}

// sql finishes a squirrel builder. The builders here take only static
// parts and placeholders, so ToSql cannot fail on valid names.
func sqlOf(b sq.Sqlizer) string {
	s, _, err := b.ToSql()
	if err != nil {
		panic(fmt.Sprintf("dialect: building statement: %v", err))
	}
	return s
}

func (d *sqlDialect) Statements(t visit.Table) (Statements, error) {
	if err := t.Validate(); err != nil {
		return Statements{}, err
	}
	n := d.names(t)
	forwardExpiry := sq.Expr("CASE WHEN "+n.expiry+" < ? THEN ? ELSE "+n.expiry+" END", nil, nil)
	bump := sq.Expr(n.version + " + 1")
	live := sq.Expr(n.expiry+" > ?", nil)
	byKey := sq.Expr(n.key+" = ?", nil)
	atVersion := sq.Expr(n.version+" = ?", nil)
	notForward := sq.Expr(n.version + " >= 0")

	byKeyTable := n.table + d.keyHint
	load := d.b.Select(n.data, n.created, n.expiry, n.version).From(n.table).Where(byKey).Where(live)
	loadLocked := load
	if d.lockSuffix != "" {
		loadLocked = load.Suffix(d.lockSuffix)
	}
	takeLock := ""
	if d.takeLock {
		takeLock = sqlOf(d.b.Update(n.table).Set(n.version, sq.Expr(n.version)).Where("0"))
	}
	return Statements{
		Load:       sqlOf(load),
		LoadLocked: sqlOf(loadLocked),
		TakeLock:   takeLock,
		Insert: sqlOf(d.b.Insert(n.table).Columns(n.key, n.data, n.created, n.expiry, n.version).
			Values(nil, nil, nil, nil, sq.Expr("1"))),
		Update: sqlOf(d.b.Update(byKeyTable).Set(n.data, nil).Set(n.expiry, forwardExpiry).Set(n.version, bump).
			Where(byKey).Where(atVersion).Where(live)),
		UpdateAny: sqlOf(d.b.Update(byKeyTable).Set(n.data, nil).Set(n.expiry, forwardExpiry).Set(n.version, bump).
			Where(byKey).Where(live).Where(notForward)),
		Renew: sqlOf(d.b.Update(byKeyTable).Set(n.key, nil).Set(n.data, nil).Set(n.expiry, forwardExpiry).Set(n.version, bump).
			Where(byKey).Where(atVersion).Where(live)),
		Touch: sqlOf(d.b.Update(byKeyTable).Set(n.expiry, nil).
			Where(byKey).Where(sq.Expr(n.expiry+" < ?", nil)).Where(live).Where(notForward)),
		End: sqlOf(d.b.Update(byKeyTable).Set(n.data, sq.Expr("NULL")).Set(n.expiry, nil).Set(n.version, bump).
			Where(byKey).Where(live).Where(notForward)),
		Delete: sqlOf(d.b.Delete(n.table).Where(byKey).Where(notForward)),
		Forward: sqlOf(d.b.Insert(n.table).Columns(n.key, n.data, n.created, n.expiry, n.version).
			Values(nil, nil, nil, nil, sq.Expr(strconv.Itoa(ForwardVersion)))),
	}, nil
}

func (d *sqlDialect) Sweep(t visit.Table, batch int) (SweepStatements, error) {
	if err := t.Validate(); err != nil {
		return SweepStatements{}, err
	}
	if batch < 1 {
		return SweepStatements{}, fmt.Errorf("dialect: sweep batch %d: must be at least 1", batch)
	}
	s := d.sweep(d, t, batch)
	n := d.names(t)
	byKey := sq.Expr(n.key+" = ?", nil)
	bump := sq.Expr(n.version + " + 1")
	s.Lease = LeaseStatements{
		Acquire: sqlOf(d.b.Update(n.table).Set(n.data, nil).Set(n.expiry, nil).Set(n.version, bump).
			Where(byKey).Where(sq.Expr("("+n.expiry+" <= ? OR "+n.data+" = ?)", nil, nil))),
		Insert: sqlOf(d.b.Insert(n.table).Columns(n.key, n.data, n.created, n.expiry, n.version).
			Values(nil, nil, nil, nil, sq.Expr("1"))),
		Read: sqlOf(d.b.Select(n.data, n.expiry).From(n.table).Where(byKey)),
		Renew: sqlOf(d.b.Update(n.table).Set(n.expiry, nil).Set(n.version, bump).
			Where(byKey).Where(sq.Expr(n.data+" = ?", nil))),
	}
	return s, nil
}

func (d *sqlDialect) CreateTable(t visit.Table) []string {
	n := d.names(t)
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS " + n.table + " (")
	for i, c := range visit.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.Quote(t.ColumnName(c)) + " " + d.types[c])
	}
	b.WriteString(", PRIMARY KEY (" + n.key + ")")
	if d.indexInTable {
		b.WriteString(", KEY " + d.Quote(t.IndexName()) + " (" + n.expiry + ")")
	}
	b.WriteString(")" + d.tableOptions)
	stmts := []string{b.String()}
	if !d.indexInTable {
		stmts = append(stmts, d.CreateExpiryIndex(t))
	}
	return stmts
}

func (d *sqlDialect) AddColumn(t visit.Table, c visit.Column) string {
	return "ALTER TABLE " + d.Quote(t.Name) + " ADD COLUMN " + d.Quote(t.ColumnName(c)) + " " + d.added[c]
}

func (d *sqlDialect) CreateExpiryIndex(t visit.Table) string {
	ine := ""
	if d.ifNotExistsIndex {
		ine = "IF NOT EXISTS "
	}
	schema, table := t.SchemaAndName()
	index, on := d.Quote(t.IndexName()), d.Quote(t.Name)
	if schema != "" && d.schemaOnIndex {
		index, on = d.Quote(schema+"."+t.IndexName()), d.Quote(table)
	}
	return "CREATE INDEX " + ine + index + " ON " + on + " (" + d.Quote(t.Expiry) + ")"
}

func (d *sqlDialect) NormalizeTimes(t visit.Table) []string {
	if d.normalize == nil {
		return nil
	}
	return d.normalize(d, t)
}

func (d *sqlDialect) ColumnsQuery(t visit.Table) (string, []any) {
	schema, name := t.SchemaAndName()
	return d.columnsQuery(schema, name)
}

func (d *sqlDialect) ExpiryIndexQuery(t visit.Table) (string, []any) {
	schema, name := t.SchemaAndName()
	return d.indexQuery(schema, name, t.Expiry)
}

// nullable returns nil for an empty schema, so that COALESCE can pick the
// connection's current schema.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
