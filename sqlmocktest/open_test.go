package sqlmocktest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// TestOpenStatements checks what Open sends: two catalog queries, SQLite's
// journal mode, then, on the dialects that prepare, one prepare per statement, all closed again by
// Close; and nothing else.
func TestOpenStatements(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		st := m.open()
		if got, want := len(m.prepared), map[string]int{"postgres": 0, "mysql": 9, "sqlite": 10, "sqlite-conn": 9}[m.name]; got != want {
			t.Fatalf("%d statements prepared, want %d", got, want)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		// Every prepare expectation carries WillBeClosed.
		if err := m.mock.ExpectationsWereMet(); err != nil {
			t.Fatalf("after Close: %v", err)
		}
		if _, err := st.Load(context.Background(), visit.NewToken()); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("Load after Close: %v", err)
		}
	})
}

// TestOpenPrepareFailure makes the fourth prepare fail: Open returns the
// error, wrapped, and closes the three statements it had prepared.
func TestOpenPrepareFailure(t *testing.T) {
	for _, name := range []string{"mysql", "sqlite"} {
		t.Run(name, func(t *testing.T) {
			m := newMock(t, name)
			m.expectCatalog()
			m.expectDetachQuery()
			order := m.statementOrder()
			for _, q := range order[:3] {
				m.mock.ExpectPrepare(q).WillBeClosed()
			}
			m.mock.ExpectPrepare(order[3]).WillReturnError(m.permanent())
			_, err := session.Open(context.Background(), m.db, m.d)
			if err == nil || !strings.HasPrefix(err.Error(), "session: open: prepare: ") {
				t.Fatalf("Open: %v", err)
			}
		})
	}
}

// TestOpenJournalFailure makes SQLite's journal-mode query fail: Open
// returns the error, wrapped, and prepares nothing.
func TestOpenJournalFailure(t *testing.T) {
	m := newMock(t, "sqlite")
	m.expectCatalog()
	m.mock.ExpectQuery("PRAGMA journal_mode").WillReturnError(m.permanent())
	_, err := session.Open(context.Background(), m.db, m.d)
	if err == nil || !strings.HasPrefix(err.Error(), "session: open: PRAGMA journal_mode: ") || !errors.Is(err, m.permanent()) {
		t.Fatalf("Open: %v", err)
	}
}

// TestOpenSchemaMismatch answers the catalog query with tables that are
// missing or lack a column: Open fails with ErrSchema, naming the fix, and
// prepares nothing.
func TestOpenSchemaMismatch(t *testing.T) {
	cases := []struct {
		name    string
		columns []string
		want    []string
	}{
		{"no table", nil, []string{"does not exist", "CREATE TABLE"}},
		{"no version", []string{"visit_key", "session_data", "created", "expiry"}, []string{`no version column "version"`, "ADD COLUMN"}},
		{"no key", []string{"session_data", "created", "expiry", "version"}, []string{`no key column "visit_key"`, "cannot be upgraded"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eachDialect(t, func(t *testing.T, m *mocked) {
				q, args := m.d.ColumnsQuery(m.tab)
				rows := sqlmock.NewRows([]string{"column_name"})
				for _, c := range tc.columns {
					rows.AddRow(c)
				}
				m.mock.ExpectQuery(q).WithArgs(values(args)...).WillReturnRows(rows)
				if len(tc.columns) > 0 {
					q, args = m.d.ExpiryIndexQuery(m.tab)
					m.mock.ExpectQuery(q).WithArgs(values(args)...).WillReturnRows(sqlmock.NewRows([]string{"count"}).AddRow(1))
				}
				_, err := session.Open(context.Background(), m.db, m.d)
				if !errors.Is(err, session.ErrSchema) {
					t.Fatalf("Open: %v, want ErrSchema", err)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
			})
		})
	}
}

// TestOpenCatalogFailure makes the catalog query fail and then fail
// during the scan of its rows.
func TestOpenCatalogFailure(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		q, args := m.d.ColumnsQuery(m.tab)
		m.mock.ExpectQuery(q).WithArgs(values(args)...).WillReturnError(m.permanent())
		m.mock.ExpectQuery(q).WithArgs(values(args)...).WillReturnRows(
			sqlmock.NewRows([]string{"column_name"}).AddRow("visit_key").AddRow("session_data").RowError(1, m.permanent()))
		for i := range 2 {
			_, err := session.Open(context.Background(), m.db, m.d)
			if err == nil || !strings.HasPrefix(err.Error(), "session: open: visit: inspect visit: list columns: ") {
				t.Fatalf("Open %d: %v", i, err)
			}
		}
	})
}
