package conformance

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/sweeper"
	"github.com/visitsession/visitsession/visit"
)

// errNoSQL is what the connector of noSQLDB gives: the code under test
// tried to reach the database.
var errNoSQL = errors.New("conformance: the database was reached")

// noSQLConnector counts attempts to connect, and refuses them all.
type noSQLConnector struct{ attempts atomic.Int64 }

func (c *noSQLConnector) Connect(context.Context) (driver.Conn, error) {
	c.attempts.Add(1)
	return nil, errNoSQL
}

func (c *noSQLConnector) Driver() driver.Driver { return noSQLDriver{c} }

type noSQLDriver struct{ c *noSQLConnector }

func (d noSQLDriver) Open(string) (driver.Conn, error) { return d.c.Connect(context.Background()) }

// openInvalidIdentifiers: table and column names that are not plain
// identifiers are rejected with visit.ErrInvalidName before any SQL runs,
// by Open, Plan, the dialect and the sweeper, and by Migrate before any
// statement that holds the name.
func openInvalidIdentifiers(ctx context.Context, e *env) error {
	nc := &noSQLConnector{}
	nodb := sql.OpenDB(nc)
	defer nodb.Close()

	// The probe works: a valid name reaches the database.
	if _, err := session.Open(ctx, nodb, e.d); !errors.Is(err, errNoSQL) || nc.attempts.Load() == 0 {
		return fmt.Errorf("set up: Open with a valid name did not reach the probe database: %v", err)
	}
	nc.attempts.Store(0)

	bad := []struct{ what, name string }{
		{"a double quote", `visit"; DROP TABLE visit; --`},
		{"a backtick", "visit`"},
		{"a single quote", "visit'"},
		{"a semicolon", "visit;"},
		{"a NUL byte", "vis\x00it"},
		{"a space", "vis it"},
		{"a hyphen", "vis-it"},
		{"a comment", "visit--"},
		{"a non-ASCII letter", "visít"},
		{"a leading digit", "1visit"},
		{"an empty name", ""},
		{"a name too long", strings.Repeat("v", visit.MaxIdentLength+1)},
	}
	var layouts []struct {
		what string
		t    visit.Table
	}
	for _, b := range bad {
		layouts = append(layouts, struct {
			what string
			t    visit.Table
		}{"table name with " + b.what, visit.Default().WithName(b.name)})
		for _, c := range visit.Columns {
			t := visit.Default()
			switch c {
			case visit.ColKey:
				t.Key = b.name
			case visit.ColData:
				t.Data = b.name
			case visit.ColCreated:
				t.Created = b.name
			case visit.ColExpiry:
				t.Expiry = b.name
			case visit.ColVersion:
				t.Version = b.name
			}
			layouts = append(layouts, struct {
				what string
				t    visit.Table
			}{fmt.Sprintf("%s column name with %s", c, b.what), t})
		}
	}
	layouts = append(layouts,
		struct {
			what string
			t    visit.Table
		}{"a table name with two schema qualifiers", visit.Default().WithName("a.b.visit")},
		struct {
			what string
			t    visit.Table
		}{"a table name with an empty schema", visit.Default().WithName(".visit")},
	)
	for _, l := range layouts {
		for _, op := range []struct {
			name string
			run  func(db *sql.DB) error
		}{
			{"session.Open", func(db *sql.DB) error {
				_, err := session.Open(ctx, db, e.d, session.WithTable(l.t))
				return err
			}},
			{"visit.Plan", func(db *sql.DB) error { _, err := visit.Plan(ctx, db, e.d, l.t); return err }},
			{"sweeper.New", func(db *sql.DB) error {
				_, err := sweeper.New(db, e.d, l.t, sweeper.Options{})
				return err
			}},
		} {
			err := op.run(nodb)
			if !errors.Is(err, visit.ErrInvalidName) {
				return fmt.Errorf("%s with %s gave %v, want an error wrapping visit.ErrInvalidName", op.name, l.what, err)
			}
			if n := nc.attempts.Load(); n != 0 {
				return fmt.Errorf("%s with %s reached the database before rejecting the name", op.name, l.what)
			}
		}
		if _, err := e.d.Statements(l.t); !errors.Is(err, visit.ErrInvalidName) {
			return fmt.Errorf("the dialect built statements for %s: %v", l.what, err)
		}
		// Migrate may open its transaction first; it must still reject
		// the name before running a statement that holds it.
		if _, err := visit.Migrate(ctx, e.db, e.d, l.t); !errors.Is(err, visit.ErrInvalidName) {
			return fmt.Errorf("visit.Migrate with %s gave %v, want an error wrapping visit.ErrInvalidName", l.what, err)
		}
	}
	return nil
}

// schemaCreate: Migrate creates a missing table with every column and the
// expiry index, and is idempotent.
func schemaCreate(ctx context.Context, e *env) error {
	t := e.scratchName()
	ran, err := e.migrate(ctx, t)
	if err != nil {
		return fmt.Errorf("migrate a missing table: %w", err)
	}
	if len(ran) == 0 || !strings.Contains(strings.ToUpper(ran[0]), "CREATE TABLE") {
		return fmt.Errorf("migrate of a missing table did not start with CREATE TABLE: %q", ran)
	}
	in, err := visit.Inspect(ctx, e.db, e.d, t)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if !in.Exists || len(in.Missing) != 0 || !in.HasExpiryIndex {
		return fmt.Errorf("after migrate the table exists=%v, lacks %v, has an expiry index=%v; want all columns and the index", in.Exists, in.Missing, in.HasExpiryIndex)
	}
	plan, err := visit.Plan(ctx, e.db, e.d, t)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if !slices.Equal(plan, e.d.NormalizeTimes(t)) {
		return fmt.Errorf("an up-to-date table still plans %q", plan)
	}
	again, err := e.migrate(ctx, t)
	if err != nil {
		return fmt.Errorf("second migrate: %w", err)
	}
	if !slices.Equal(again, e.d.NormalizeTimes(t)) {
		return fmt.Errorf("a second migrate ran %q; it must change nothing", again)
	}
	st, err := e.open(ctx, e.db, t)
	if err != nil {
		return err
	}
	if _, err := st.saveNew(ctx, map[string]any{"k": "v"}); err != nil {
		return err
	}
	return nil
}

// legacyRow is a row of TurboGears' visit table, which has no data and no
// version.
type legacyRow struct {
	key             string
	created, expiry time.Time
}

// schemaUpgradeTurboGears: a TurboGears-shaped visit table (visit_key,
// created, expiry) that holds rows is upgraded by adding only the missing
// columns; its rows stay, its live visits load in plain key mode, and a
// second upgrade changes nothing.
//
// The TurboGears table is made from a full one by dropping data, version
// and, where the database accepts one of the two usual DROP INDEX forms,
// the expiry index, so that its column types are the dialect's own.
func schemaUpgradeTurboGears(ctx context.Context, e *env) error {
	t, err := e.scratchTable(ctx)
	if err != nil {
		return err
	}
	q := e.d.Quote
	schema, _ := t.SchemaAndName()
	index := t.IndexName()
	qualified := index
	if schema != "" {
		qualified = schema + "." + index
	}
	for _, s := range []string{
		"DROP INDEX " + q(index) + " ON " + q(t.Name), // MySQL, MariaDB
		"DROP INDEX " + q(qualified),                  // PostgreSQL, SQLite
	} {
		if _, err := e.db.ExecContext(ctx, s); err == nil {
			break
		}
	}
	for _, c := range []visit.Column{visit.ColData, visit.ColVersion} {
		if _, err := e.db.ExecContext(ctx, "ALTER TABLE "+q(t.Name)+" DROP COLUMN "+q(t.ColumnName(c))); err != nil {
			return fmt.Errorf("set up: drop the %s column: %w", c, err)
		}
	}
	before, err := visit.Inspect(ctx, e.db, e.d, t)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if !slices.Equal(before.Missing, []visit.Column{visit.ColData, visit.ColVersion}) {
		return fmt.Errorf("set up: the TurboGears-shaped table lacks %v, want data and version", before.Missing)
	}
	now := baseTime.Truncate(time.Microsecond)
	rows := []legacyRow{
		{randomHex(20), now.Add(-24 * time.Hour), now.Add(time.Hour)},
		{randomHex(20), now.Add(-2 * time.Hour), now.Add(2 * time.Hour)},
		{randomHex(20), now.Add(-48 * time.Hour), now.Add(-time.Hour)}, // expired
	}
	for _, r := range rows {
		if _, err := e.exec(ctx, e.db, "INSERT INTO "+q(t.Name)+" ("+q(t.Key)+", "+q(t.Created)+", "+q(t.Expiry)+") VALUES (?, ?, ?)",
			r.key, e.d.EncodeTime(r.created), e.d.EncodeTime(r.expiry)); err != nil {
			return fmt.Errorf("set up: insert a TurboGears row: %w", err)
		}
	}

	ran, err := e.migrate(ctx, t)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	want := []string{e.d.AddColumn(t, visit.ColData), e.d.AddColumn(t, visit.ColVersion)}
	if !before.HasExpiryIndex {
		want = append(want, e.d.CreateExpiryIndex(t))
	}
	want = append(want, e.d.NormalizeTimes(t)...)
	if !slices.Equal(ran, want) {
		return fmt.Errorf("the upgrade ran %q, want only the missing columns%s: %q",
			ran, map[bool]string{true: "", false: " and the expiry index"}[before.HasExpiryIndex], want)
	}
	after, err := visit.Inspect(ctx, e.db, e.d, t)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if len(after.Missing) != 0 || !after.HasExpiryIndex {
		return fmt.Errorf("after the upgrade the table lacks %v, has an expiry index=%v", after.Missing, after.HasExpiryIndex)
	}
	if n, err := e.countAll(ctx, t); err != nil {
		return err
	} else if n != len(rows) {
		return fmt.Errorf("the upgrade left %d rows of %d", n, len(rows))
	}
	for i, r := range rows {
		got, err := e.row(ctx, t, r.key)
		if err != nil {
			return err
		}
		if !got.exists || !got.created.Equal(r.created) || !got.expiry.Equal(r.expiry) || got.data != nil {
			return fmt.Errorf("TurboGears row %d after the upgrade: exists=%v created %s expiry %s data NULL=%v; want it unchanged, data NULL",
				i, got.exists, us(got.created), us(got.expiry), got.data == nil)
		}
	}
	again, err := e.migrate(ctx, t)
	if err != nil {
		return fmt.Errorf("second upgrade: %w", err)
	}
	if !slices.Equal(again, e.d.NormalizeTimes(t)) {
		return fmt.Errorf("a second upgrade ran %q; it must change nothing", again)
	}

	// TurboGears' keys are plain 40-character keys: live visits load.
	clk := newClock(baseTime)
	st, err := e.open(ctx, e.db, t, session.WithKeyMode(visit.KeyPlain), session.WithClock(clk.Now))
	if err != nil {
		return err
	}
	l, err := st.Load(ctx, rows[0].key)
	if err != nil || l.IsNew() {
		return fmt.Errorf("a live TurboGears visit did not load in plain key mode: new=%v err=%v", l.IsNew(), err)
	}
	l.Set("user", 7)
	if err := st.Save(ctx, l); err != nil {
		return fmt.Errorf("save into an upgraded TurboGears visit: %w", err)
	}
	if l.Token() != rows[0].key {
		return errors.New("saving an upgraded TurboGears visit moved it to another key")
	}
	if again, err := st.Load(ctx, rows[0].key); err != nil || again.GetInt("user") != 7 {
		return fmt.Errorf("an upgraded TurboGears visit reads %v after a save (err %v)", again.Keys(), err)
	}
	if expired, err := st.Load(ctx, rows[2].key); err != nil || !expired.IsNew() {
		return fmt.Errorf("an expired TurboGears visit loaded: new=%v err=%v", expired.IsNew(), err)
	}
	return nil
}
