package sqlmocktest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/visitsession/visitsession/visit"
)

// ddlDialects runs f for the dialects with transactional DDL, on which
// visit.Migrate runs in one transaction.
func ddlDialects(t *testing.T, f func(t *testing.T, m *mocked)) {
	for _, name := range []string{"postgres", "sqlite"} {
		t.Run(name, func(t *testing.T) { f(t, newMock(t, name)) })
	}
}

// expectColumns expects the column listing, answered with cols (none: no
// table) or failing with err.
func (m *mocked) expectColumns(cols []string, err error) {
	q, args := m.d.ColumnsQuery(m.tab)
	e := m.mock.ExpectQuery(q).WithArgs(values(args)...)
	if err != nil {
		e.WillReturnError(err)
		return
	}
	rows := sqlmock.NewRows([]string{"column_name"})
	for _, c := range cols {
		rows.AddRow(c)
	}
	e.WillReturnRows(rows)
}

// expectIndex expects the expiry index query, answered with n indexes.
func (m *mocked) expectIndex(n int) {
	q, args := m.d.ExpiryIndexQuery(m.tab)
	m.mock.ExpectQuery(q).WithArgs(values(args)...).WillReturnRows(sqlmock.NewRows([]string{"count"}).AddRow(n))
}

func (m *mocked) columnsTrip() string {
	q, _ := m.d.ColumnsQuery(m.tab)
	return "query " + q
}

func (m *mocked) indexTrip() string {
	q, _ := m.d.ExpiryIndexQuery(m.tab)
	return "query " + q
}

// The calls that open, commit and roll back the migration's transaction:
// a database/sql transaction, or statements on a dedicated connection
// (SQLite's BEGIN IMMEDIATE).
func (m *mocked) expectDDLBegin() string {
	if begin, _, _ := m.d.DDLTransaction(); begin != "" {
		m.mock.ExpectExec(begin).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		return "exec " + begin
	}
	m.mock.ExpectBegin()
	return "begin"
}

func (m *mocked) expectDDLCommit(err error) string {
	if _, commit, _ := m.d.DDLTransaction(); commit != "" {
		e := m.mock.ExpectExec(commit).WithoutArgs()
		if err != nil {
			e.WillReturnError(err)
		} else {
			e.WillReturnResult(sqlmock.NewResult(0, 0))
		}
		return "exec " + commit
	}
	e := m.mock.ExpectCommit()
	if err != nil {
		e.WillReturnError(err)
	}
	return "commit"
}

func (m *mocked) expectDDLRollback() string {
	if _, _, rollback := m.d.DDLTransaction(); rollback != "" {
		m.mock.ExpectExec(rollback).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		return "exec " + rollback
	}
	m.mock.ExpectRollback()
	return "rollback"
}

func execTrips(stmts []string) []string {
	out := make([]string, len(stmts))
	for i, s := range stmts {
		out[i] = "exec " + s
	}
	return out
}

// turboGears lists the columns of a TurboGears visit table, which lacks
// session_data and version.
var turboGears = []string{"visit_key", "created", "expiry"}

// TestMigrateCreatesInOneTransaction creates a missing table: BEGIN (on
// SQLite BEGIN IMMEDIATE, which takes the write lock before the catalog is
// read), the catalog query, every CREATE statement, COMMIT.
func TestMigrateCreatesInOneTransaction(t *testing.T) {
	ddlDialects(t, func(t *testing.T, m *mocked) {
		begin := m.expectDDLBegin()
		m.expectColumns(nil, nil)
		create := m.d.CreateTable(m.tab)
		for _, s := range create {
			m.mock.ExpectExec(s).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		}
		commit := m.expectDDLCommit(nil)
		ran, err := visit.Migrate(context.Background(), m.db, m.d, m.tab)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "statements run", ran, create)
		want := append(append([]string{begin, m.columnsTrip()}, execTrips(create)...), commit)
		sameTrips(t, "Migrate", m.trips(), want...)
	})
}

// TestMigrateUpgradesInOneTransaction upgrades a TurboGears table: the
// catalog queries, one ADD COLUMN per missing column, the expiry index,
// the dialect's timestamp normalization, all in one transaction.
func TestMigrateUpgradesInOneTransaction(t *testing.T) {
	ddlDialects(t, func(t *testing.T, m *mocked) {
		begin := m.expectDDLBegin()
		m.expectColumns(turboGears, nil)
		m.expectIndex(0)
		stmts := []string{m.d.AddColumn(m.tab, visit.ColData), m.d.AddColumn(m.tab, visit.ColVersion), m.d.CreateExpiryIndex(m.tab)}
		stmts = append(stmts, m.d.NormalizeTimes(m.tab)...)
		for _, s := range stmts {
			m.mock.ExpectExec(s).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		}
		commit := m.expectDDLCommit(nil)
		ran, err := visit.Migrate(context.Background(), m.db, m.d, m.tab)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "statements run", ran, stmts)
		want := append(append([]string{begin, m.columnsTrip(), m.indexTrip()}, execTrips(stmts)...), commit)
		sameTrips(t, "Migrate", m.trips(), want...)
	})
}

// TestMigrateRollsBack fails each step of an upgrade in turn: the
// transaction is rolled back, nothing runs after the failure, and the
// error says which step failed.
func TestMigrateRollsBack(t *testing.T) {
	cases := []struct {
		name   string
		expect func(m *mocked) (trips []string)
		want   string
	}{
		{
			name: "column listing fails",
			expect: func(m *mocked) []string {
				m.expectColumns(nil, m.permanent())
				return []string{m.columnsTrip()}
			},
			want: "visit: inspect visit: list columns: ",
		},
		{
			name: "column scan fails",
			expect: func(m *mocked) []string {
				q, args := m.d.ColumnsQuery(m.tab)
				m.mock.ExpectQuery(q).WithArgs(values(args)...).WillReturnRows(
					sqlmock.NewRows([]string{"column_name"}).AddRow("visit_key").AddRow("created").RowError(1, m.permanent()))
				return []string{m.columnsTrip()}
			},
			want: "visit: inspect visit: list columns: ",
		},
		{
			name: "index query fails",
			expect: func(m *mocked) []string {
				m.expectColumns(turboGears, nil)
				q, args := m.d.ExpiryIndexQuery(m.tab)
				m.mock.ExpectQuery(q).WithArgs(values(args)...).WillReturnError(m.permanent())
				return []string{m.columnsTrip(), m.indexTrip()}
			},
			want: "visit: inspect visit: find expiry index: ",
		},
		{
			name: "second DDL statement fails",
			expect: func(m *mocked) []string {
				m.expectColumns(turboGears, nil)
				m.expectIndex(1)
				add := m.d.AddColumn(m.tab, visit.ColData)
				m.mock.ExpectExec(add).WillReturnResult(sqlmock.NewResult(0, 0))
				version := m.d.AddColumn(m.tab, visit.ColVersion)
				m.mock.ExpectExec(version).WillReturnError(m.permanent())
				return []string{m.columnsTrip(), m.indexTrip(), "exec " + add, "exec " + version}
			},
			want: "visit: migrate visit: statement 2 of ",
		},
		{
			name: "table without a key column",
			expect: func(m *mocked) []string {
				m.expectColumns([]string{"id", "created"}, nil)
				m.expectIndex(0)
				return []string{m.columnsTrip(), m.indexTrip()}
			},
			want: "visit: existing table has no key column",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ddlDialects(t, func(t *testing.T, m *mocked) {
				begin := m.expectDDLBegin()
				trips := tc.expect(m)
				rollback := m.expectDDLRollback()
				_, err := visit.Migrate(context.Background(), m.db, m.d, m.tab)
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Fatalf("Migrate: %v, want an error starting %q", err, tc.want)
				}
				sameTrips(t, "failed Migrate", m.trips(), append(append([]string{begin}, trips...), rollback)...)
			})
		})
	}
}

// TestMigrateCommitFails fails the COMMIT of an upgrade. On a dedicated
// connection a ROLLBACK follows, so that the connection goes back to the
// pool with no transaction open.
func TestMigrateCommitFails(t *testing.T) {
	ddlDialects(t, func(t *testing.T, m *mocked) {
		begin := m.expectDDLBegin()
		m.expectColumns(nil, nil)
		create := m.d.CreateTable(m.tab)
		for _, s := range create {
			m.mock.ExpectExec(s).WillReturnResult(sqlmock.NewResult(0, 0))
		}
		commit := m.expectDDLCommit(m.retryable())
		want := append(append([]string{begin, m.columnsTrip()}, execTrips(create)...), commit)
		if _, _, rollback := m.d.DDLTransaction(); rollback != "" {
			want = append(want, m.expectDDLRollback())
		}
		_, err := visit.Migrate(context.Background(), m.db, m.d, m.tab)
		if !errors.Is(err, m.retryable()) || !strings.HasPrefix(err.Error(), "visit: migrate visit: commit: ") {
			t.Fatalf("Migrate: %v", err)
		}
		sameTrips(t, "Migrate with a failed COMMIT", m.trips(), want...)
	})
}

// TestMigrateContextEnds cancels the context while the catalog query runs:
// the transaction is rolled back once and Migrate fails.
func TestMigrateContextEnds(t *testing.T) {
	m := newMock(t, "postgres")
	m.mock.ExpectBegin()
	q, args := m.d.ColumnsQuery(m.tab)
	m.mock.ExpectQuery(q).WithArgs(values(args)...).WillDelayFor(time.Minute).WillReturnRows(sqlmock.NewRows([]string{"column_name"}))
	m.mock.ExpectRollback()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.rec.hooks(func(call string) {
		if call == m.columnsTrip() {
			time.AfterFunc(20*time.Millisecond, cancel)
		}
	}, nil)
	if _, err := visit.Migrate(ctx, m.db, m.d, m.tab); err == nil {
		t.Fatal("Migrate succeeded")
	}
	m.waitTrip(t, "rollback")
	got := m.trips()
	if len(got) > 0 && got[len(got)-1] == "close" {
		got = got[:len(got)-1]
	}
	sameTrips(t, "cancelled Migrate", got, "begin", m.columnsTrip(), "rollback")
}

// TestMigrateWithoutTransactionalDDL runs MySQL's upgrade statement by
// statement on the pool, with no transaction, stopping at the first
// failure.
func TestMigrateWithoutTransactionalDDL(t *testing.T) {
	m := newMock(t, "mysql")
	m.expectColumns(turboGears, nil)
	m.expectIndex(0)
	add := m.d.AddColumn(m.tab, visit.ColData)
	m.mock.ExpectExec(add).WillReturnResult(sqlmock.NewResult(0, 0))
	version := m.d.AddColumn(m.tab, visit.ColVersion)
	m.mock.ExpectExec(version).WillReturnError(m.permanent())
	_, err := visit.Migrate(context.Background(), m.db, m.d, m.tab)
	if err == nil || !strings.HasPrefix(err.Error(), "visit: migrate visit: statement 2 of 3: ") {
		t.Fatalf("Migrate: %v", err)
	}
	sameTrips(t, "Migrate", m.trips(), m.columnsTrip(), m.indexTrip(), "exec "+add, "exec "+version)
}
