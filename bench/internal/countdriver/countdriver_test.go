package countdriver_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"modernc.org/sqlite"

	"github.com/visitsession/visitsession/bench/internal/countdriver"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  countdriver.Kind
	}{
		{"SELECT 1", countdriver.Select},
		{"  select data FROM t", countdriver.Select},
		{"(SELECT 1) UNION (SELECT 2)", countdriver.Select},
		{"-- note\nUPDATE t SET a = 1", countdriver.Update},
		{"/* hint */ DELETE FROM t", countdriver.Delete},
		{"INSERT INTO t VALUES (1) ON CONFLICT (k) DO UPDATE SET v = 1", countdriver.Insert},
		{"REPLACE INTO t VALUES (1)", countdriver.Insert},
		{"BEGIN IMMEDIATE", countdriver.Other},
		{"WITH x AS (SELECT 1) SELECT * FROM x", countdriver.Other},
		{"", countdriver.Other},
		{"-- only a comment", countdriver.Other},
	} {
		t.Run(tc.query, func(t *testing.T) {
			if got := countdriver.Classify(tc.query); got != tc.want {
				t.Errorf("Classify(%q) = %v, want %v", tc.query, got, tc.want)
			}
		})
	}
}

func TestCounts(t *testing.T) {
	c := new(countdriver.Counter)
	countdriver.Register("counting-sqlite-test", &sqlite.Driver{}, c)
	db, err := sql.Open("counting-sqlite-test", "file:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
	start := c.Snapshot()

	mustExec("INSERT INTO t (k, v) VALUES (?, ?)", 1, "a")
	st, err := db.PrepareContext(ctx, "UPDATE t SET v = ? WHERE k = ?")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := st.ExecContext(ctx, "b", 1); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT v FROM t WHERE k = ?", 1).Scan(&v); err != nil || v != "b" {
		t.Fatalf("select: %q, %v", v, err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM t WHERE k = ?", 1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	got := c.Snapshot().Sub(start)
	want := map[countdriver.Kind]uint64{
		countdriver.Select: 1, countdriver.Insert: 1, countdriver.Update: 3, countdriver.Delete: 1,
		countdriver.Other: 2, // BEGIN and COMMIT
	}
	for k, n := range want {
		if got.Get(k) != n {
			t.Errorf("%v: %d statements, want %d", k, got.Get(k), n)
		}
	}
	if got.Prepares != 1 {
		t.Errorf("prepares: %d, want 1", got.Prepares)
	}
	if got.Writes() != 5 || got.Total() != 8 {
		t.Errorf("writes %d, total %d; want 5 and 8", got.Writes(), got.Total())
	}
}
