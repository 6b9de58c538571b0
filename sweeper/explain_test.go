package sweeper_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/sweeper"
	"github.com/visitsession/visitsession/visit"
)

// TestExplainUsesExpiryIndex checks that every batch statement reaches its
// rows through a range scan of the expiry index, from a lower bound, so
// that the cost of a batch does not grow with the rows swept before it,
// and without a sort of the whole range. The table holds mostly cleared
// rows, the case where a scan from the oldest expiry would be quadratic.
func TestExplainUsesExpiryIndex(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newEnv(t, tg)
		e.bulk(t, e.db, "cleared", 4000, true, func(i int) time.Time { return now.Add(-time.Duration(i+1) * time.Second) })
		e.bulk(t, e.db, "old", 200, false, func(i int) time.Time { return now.Add(-time.Duration(i+1) * time.Second) })
		e.bulk(t, e.db, "live", 1000, false, func(i int) time.Time { return now.Add(time.Duration(i+1) * time.Second) })
		st, err := tg.Dialect.Sweep(e.tab, 100)
		if err != nil {
			t.Fatal(err)
		}
		index := e.tab.IndexName()
		ctx := context.Background()
		conn, err := e.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		statements := map[string]string{"clear": st.Clear, "delete": st.Delete}
		if st.ClearBound != "" {
			statements["clear bound"], statements["delete bound"] = st.ClearBound, st.DeleteBound
		}
		args := []any{e.enc(now.Add(-time.Hour)), e.enc(now), sweeper.LeaseKey}

		switch tg.Kind {
		case "postgres":
			// As the sweeper runs a batch: after Setup (here in a
			// transaction, which its rollback undoes).
			// The table has no statistics, and the statements are checked
			// both as planned for these arguments and in the generic plan
			// that a prepared statement switches to after five runs.
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tx.Rollback() })
			if _, err := tx.ExecContext(ctx, st.Setup); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
				t.Fatal(err)
			}
			literals := fmt.Sprintf("'%s'::timestamptz, '%s'::timestamptz, '%s'",
				now.Add(-time.Hour).Format(time.RFC3339Nano), now.Format(time.RFC3339Nano), sweeper.LeaseKey)
			for name, s := range statements {
				if _, err := tx.ExecContext(ctx, "PREPARE sweep_batch (timestamptz, timestamptz, text) AS "+s); err != nil {
					t.Fatal(err)
				}
				for kind, plan := range map[string]string{
					"custom":  explain(t, tx, "EXPLAIN "+s, args, 0),
					"generic": explain(t, tx, "EXPLAIN EXECUTE sweep_batch ("+literals+")", nil, 0),
				} {
					t.Logf("%s, %s plan:\n%s", name, kind, plan)
					if !strings.Contains(plan, "Index Scan using "+index) || !strings.Contains(plan, "Tid Scan on") ||
						strings.Contains(plan, "Seq Scan") ||
						strings.Contains(plan, "Bitmap") || strings.Contains(plan, "Sort") || strings.Contains(plan, "Hash") {
						t.Errorf("%s: %s plan does not range-scan %s:\n%s", name, kind, index, plan)
					}
					if !strings.Contains(plan, "Index Cond: (("+e.tab.Expiry+" >= ") {
						t.Errorf("%s: %s plan has no lower bound on %s in the index condition:\n%s", name, kind, e.tab.Expiry, plan)
					}
				}
				if _, err := tx.ExecContext(ctx, "DEALLOCATE sweep_batch"); err != nil {
					t.Fatal(err)
				}
			}
		case "mysql":
			mustExec(t, conn, "ANALYZE TABLE "+tg.Dialect.Quote(e.tab.Name))
			for name, s := range statements {
				// Columns: id, select_type, table, type, possible_keys, key,
				// key_len, ref, rows, Extra.
				plan := explain(t, conn, "EXPLAIN "+s, args, 5)
				if strings.TrimSpace(plan) != index {
					t.Errorf("%s: EXPLAIN key %q, want %q", name, plan, index)
				}
				typ := explain(t, conn, "EXPLAIN "+s, args, 3)
				t.Logf("%s: type %s, key %s", name, typ, plan)
				if strings.TrimSpace(typ) != "range" {
					t.Errorf("%s: EXPLAIN type %q, want range", name, typ)
				}
			}
		case "sqlite":
			mustExec(t, conn, "ANALYZE")
			for name, s := range statements {
				// Columns: id, parent, notused, detail.
				plan := explain(t, conn, "EXPLAIN QUERY PLAN "+s, args, 3)
				t.Logf("%s:\n%s", name, plan)
				if !strings.Contains(plan, "USING INDEX "+index+" ("+e.tab.Expiry+">? AND "+e.tab.Expiry+"<?)") &&
					!strings.Contains(plan, "USING COVERING INDEX "+index+" ("+e.tab.Expiry+">? AND "+e.tab.Expiry+"<?)") {
					t.Errorf("%s: plan does not range-scan %s:\n%s", name, index, plan)
				}
				for _, line := range strings.Split(plan, "\n") {
					if strings.HasPrefix(line, "SCAN ") {
						t.Errorf("%s: full scan %q:\n%s", name, line, plan)
					}
				}
			}
		default:
			t.Fatalf("no EXPLAIN check for %s", tg.Kind)
		}
	})
}

func mustExec(t *testing.T, conn *sql.Conn, q string) {
	t.Helper()
	rows, err := conn.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	for rows.Next() {
	}
	if err := rows.Close(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// explain runs q and returns column col of every row, one line each.
func explain(t *testing.T, q visit.Querier, query string, args []any, col int) string {
	t.Helper()
	rows, err := q.QueryContext(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		v := vals[col]
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		lines = append(lines, fmt.Sprint(v))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return strings.Join(lines, "\n")
}
