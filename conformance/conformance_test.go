package conformance_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/visitsession/visitsession/conformance"
	"github.com/visitsession/visitsession/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// opener opens second pools on the target's database for the suite.
func opener(tg *testdb.Target) conformance.Option {
	return conformance.WithOpener(func(context.Context) (*sql.DB, error) { return sql.Open(tg.Driver, tg.DSN) })
}

// TestConformance runs the whole suite on every database, each case on its
// own scratch table.
func TestConformance(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		conformance.Run(t, tg.DB, tg.Dialect, opener(tg))
	})
}
