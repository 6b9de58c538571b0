package visit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/visit"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestMigrateCreatesAndIsIdempotent(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.Table(t)
		plan, err := visit.Plan(ctx, tg.DB, tg.Dialect, tab)
		if err != nil || len(plan) == 0 || !strings.HasPrefix(plan[0], "CREATE TABLE") {
			t.Fatalf("plan for a missing table: %q %v", plan, err)
		}
		ran, err := visit.Migrate(ctx, tg.DB, tg.Dialect, tab)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(ran, ";") != strings.Join(plan, ";") {
			t.Fatalf("migrate ran %q, plan said %q", ran, plan)
		}
		in, err := visit.Inspect(ctx, tg.DB, tg.Dialect, tab)
		if err != nil || !in.Exists || len(in.Missing) != 0 || !in.HasExpiryIndex {
			t.Fatalf("after create: %+v %v", in, err)
		}
		again, err := visit.Migrate(ctx, tg.DB, tg.Dialect, tab)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range again {
			if strings.Contains(s, "CREATE") || strings.Contains(s, "ALTER") {
				t.Fatalf("second migrate ran DDL: %q", s)
			}
		}
	})
}

// TestMigrateUpgradesTurboGearsTable starts from the table TurboGears'
// visit tracking creates, holding rows, and checks the upgrade adds only
// what is missing and keeps every row.
func TestMigrateUpgradesTurboGearsTable(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.Table(t)
		q := tg.Dialect.Quote(tab.Name)
		ts := map[string]string{"postgres": "TIMESTAMP", "mysql": "DATETIME", "sqlite": "TIMESTAMP"}[tg.Kind]
		if _, err := tg.DB.Exec(fmt.Sprintf("CREATE TABLE %s (visit_key VARCHAR(40) NOT NULL PRIMARY KEY, created %s NOT NULL, expiry %s)", q, ts, ts)); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := tg.DB.Exec(fmt.Sprintf("INSERT INTO %s (visit_key, created, expiry) VALUES ('%040d', '2024-01-0%d 10:00:00', '2024-01-0%d 10:20:00')", q, i, i+1, i+1)); err != nil {
				t.Fatal(err)
			}
		}
		plan, err := visit.Plan(ctx, tg.DB, tg.Dialect, tab)
		if err != nil {
			t.Fatal(err)
		}
		var ddl []string
		for _, s := range plan {
			if strings.HasPrefix(s, "ALTER") || strings.HasPrefix(s, "CREATE") {
				ddl = append(ddl, s)
			}
		}
		if len(ddl) != 3 || !strings.Contains(ddl[0], "session_data") || !strings.Contains(ddl[1], "version") || !strings.Contains(ddl[2], "INDEX") {
			t.Fatalf("upgrade DDL = %q", ddl)
		}
		if _, err := visit.Migrate(ctx, tg.DB, tg.Dialect, tab); err != nil {
			t.Fatal(err)
		}
		in, err := visit.Inspect(ctx, tg.DB, tg.Dialect, tab)
		if err != nil || len(in.Missing) != 0 || !in.HasExpiryIndex {
			t.Fatalf("after upgrade: %+v %v", in, err)
		}
		var n, versions int
		if err := tg.DB.QueryRow("SELECT count(*), sum(version) FROM "+q+" WHERE session_data IS NULL").Scan(&n, &versions); err != nil {
			t.Fatal(err)
		}
		if n != 3 || versions != 0 {
			t.Fatalf("rows after upgrade: %d with version sum %d", n, versions)
		}
		if tg.Kind == "sqlite" {
			// Text timestamps were rewritten as integer microseconds.
			var typ string
			var micros int64
			if err := tg.DB.QueryRow("SELECT typeof(expiry), expiry FROM "+q+" ORDER BY expiry LIMIT 1").Scan(&typ, &micros); err != nil {
				t.Fatal(err)
			}
			want := time.Date(2024, 1, 1, 10, 20, 0, 0, time.UTC).UnixMicro()
			if typ != "integer" || micros != want {
				t.Fatalf("normalized expiry: %s %d, want integer %d", typ, micros, want)
			}
		}
	})
}

func TestMigrateRefusesTableWithoutKey(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		tab := tg.Table(t)
		if _, err := tg.DB.Exec("CREATE TABLE " + tg.Dialect.Quote(tab.Name) + " (other_id INTEGER NOT NULL PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		if _, err := visit.Migrate(context.Background(), tg.DB, tg.Dialect, tab); !errors.Is(err, visit.ErrNoKeyColumn) {
			t.Fatalf("got %v, want ErrNoKeyColumn", err)
		}
	})
}

func TestMigrateCustomNames(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := visit.Table{Name: "Sess_" + testdb.RandomSuffix(), Key: "id", Data: "blob", Created: "user", Expiry: "order", Version: "rev"}
		t.Cleanup(func() { tg.DB.Exec("DROP TABLE IF EXISTS " + tg.Dialect.Quote(tab.Name)) })
		if _, err := visit.Migrate(ctx, tg.DB, tg.Dialect, tab); err != nil {
			t.Fatalf("reserved-word column names: %v", err)
		}
		in, err := visit.Inspect(ctx, tg.DB, tg.Dialect, tab)
		if err != nil || !in.Exists || len(in.Missing) != 0 || !in.HasExpiryIndex {
			t.Fatalf("%+v %v", in, err)
		}
	})
}
