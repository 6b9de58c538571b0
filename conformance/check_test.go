package conformance_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/visitsession/visitsession/conformance"
	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/visit"
)

// appRow is a row an application wrote, which the suite must not touch.
type appRow struct {
	key             string
	data            []byte
	created, expiry time.Time
	version         int64
}

// dumpTable reads every row of t, ordered by key.
func dumpTable(t *testing.T, tg *testdb.Target, tab visit.Table) []appRow {
	t.Helper()
	q := tg.Dialect.Quote
	rows, err := tg.DB.Query("SELECT " + q(tab.Key) + ", " + q(tab.Data) + ", " + q(tab.Created) + ", " + q(tab.Expiry) + ", " + q(tab.Version) +
		" FROM " + q(tab.Name) + " ORDER BY " + q(tab.Key))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []appRow
	for rows.Next() {
		var r appRow
		var c, x any
		if err := rows.Scan(&r.key, &r.data, &c, &x, &r.version); err != nil {
			t.Fatal(err)
		}
		if r.created, err = tg.Dialect.DecodeTime(c); err != nil {
			t.Fatal(err)
		}
		if r.expiry, err = tg.Dialect.DecodeTime(x); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// scratchTables counts the suite's scratch tables left in the database.
func scratchTables(t *testing.T, tg *testdb.Target) int {
	t.Helper()
	q := map[string]string{
		"postgres": "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'vsconf%'",
		"mysql":    "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'vsconf%'",
		"sqlite":   "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'vsconf%'",
	}[tg.Kind]
	var n int
	if err := tg.DB.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCheckOnRealTable points the suite at an existing table with its own
// column names that holds an application's rows, live, expired and ended:
// every case passes, those rows are exactly as before, no row of the suite
// remains, and no scratch table is left behind.
func TestCheckOnRealTable(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := visit.Table{Name: tg.Table(t).Name, Key: "vkey", Data: "payload", Created: "started_at", Expiry: "ends_at", Version: "rev"}
		if _, err := visit.Migrate(ctx, tg.DB, tg.Dialect, tab); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		q := tg.Dialect.Quote
		insert := "INSERT INTO " + q(tab.Name) + " (" + q(tab.Key) + ", " + q(tab.Data) + ", " + q(tab.Created) + ", " + q(tab.Expiry) + ", " + q(tab.Version) + ") VALUES (?, ?, ?, ?, ?)"
		if insert2, err := tg.Dialect.Placeholder().ReplacePlaceholders(insert); err == nil {
			insert = insert2
		}
		for i, r := range []appRow{
			{visit.HashToken(visit.NewToken()), []byte("live"), now.Add(-time.Hour), now.Add(time.Hour), 3},
			{visit.HashToken(visit.NewToken()), []byte("expired"), now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), 1},
			{visit.HashToken(visit.NewToken()), nil, now.Add(-2 * time.Hour), now.Add(-time.Hour), 7},                        // ended
			{visit.NewToken(), []byte("plain key, far future"), now, time.Date(now.Year()+5, 3, 4, 6, 0, 0, 0, time.UTC), 1}, // near the suite's dates
		} {
			if _, err := tg.DB.Exec(insert, r.key, r.data, tg.Dialect.EncodeTime(r.created), tg.Dialect.EncodeTime(r.expiry), r.version); err != nil {
				t.Fatalf("insert app row %d: %v", i, err)
			}
		}
		before := dumpTable(t, tg, tab)
		leftBefore := scratchTables(t, tg)

		rep := conformance.Check(ctx, tg.DB, tg.Dialect, conformance.WithTable(tab), opener(tg))
		for _, r := range rep.Results {
			if r.Outcome == conformance.Fail {
				t.Errorf("%s: %s", r.Name, r.Message)
			}
		}
		if rep.Table != tab.Name || rep.Dialect != tg.Dialect.Name() || len(rep.Results) != len(conformance.CaseNames()) {
			t.Errorf("report: table %q dialect %q with %d results", rep.Table, rep.Dialect, len(rep.Results))
		}

		after := dumpTable(t, tg, tab)
		if len(after) != len(before) {
			t.Fatalf("the table holds %d rows after the suite, want the application's %d", len(after), len(before))
		}
		for i := range before {
			b, a := before[i], after[i]
			if a.key != b.key || !bytes.Equal(a.data, b.data) || (a.data == nil) != (b.data == nil) ||
				!a.created.Equal(b.created) || !a.expiry.Equal(b.expiry) || a.version != b.version {
				t.Errorf("application row %d changed: %+v, was %+v", i, a, b)
			}
		}
		if n := scratchTables(t, tg); n != leftBefore {
			t.Errorf("%d scratch tables left behind", n-leftBefore)
		}
	})
}

// TestCheckLeavesNothingBehind runs the suite on scratch tables and checks
// that they are all dropped.
func TestCheckLeavesNothingBehind(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	before := scratchTables(t, tg)
	rep := conformance.Check(t.Context(), tg.DB, tg.Dialect, conformance.WithParallel(false))
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if n := scratchTables(t, tg); n != before {
		t.Fatalf("%d scratch tables left behind", n-before)
	}
	if got := tg.DB.Stats().InUse; got != 0 {
		t.Fatalf("%d connections of the caller's pool still in use", got)
	}
}

func TestCaseNames(t *testing.T) {
	names := conformance.CaseNames()
	if len(names) < 30 {
		t.Fatalf("%d cases", len(names))
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("case %q listed twice", n)
		}
		seen[n] = true
		if strings.Count(n, "/") != 1 || strings.ContainsAny(n, " \t\n") {
			t.Errorf("case name %q: want Group/Name", n)
		}
	}
	for _, want := range []string{"Expiry/MicrosecondBoundary", "Load/ExpiredToken", "Sweeper/ExtendedDuringSweep", "Schema/UpgradeTurboGears"} {
		if !seen[want] {
			t.Errorf("no case %q", want)
		}
	}
}

func TestReport(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results []conformance.Result
		summary string
		failed  []string
	}{
		{"empty", nil, "0 passed, 0 failed", nil},
		{"all pass", []conformance.Result{{Name: "A/a"}, {Name: "A/b"}}, "2 passed, 0 failed", nil},
		{"with skip", []conformance.Result{{Name: "A/a"}, {Name: "A/b", Outcome: conformance.Skip, Message: "n/a"}}, "1 passed, 0 failed, 1 skipped", nil},
		{"failures", []conformance.Result{
			{Name: "A/a", Outcome: conformance.Fail, Message: "broke"},
			{Name: "A/b"},
			{Name: "A/c", Outcome: conformance.Fail, Message: "also broke"},
			{Name: "A/d", Outcome: conformance.Skip},
		}, "1 passed, 2 failed, 1 skipped", []string{"A/a", "A/c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := conformance.Report{Dialect: "x", Results: tc.results}
			if got := rep.Summary(); got != tc.summary {
				t.Errorf("Summary() = %q, want %q", got, tc.summary)
			}
			err := rep.Err()
			if len(tc.failed) == 0 {
				if err != nil {
					t.Fatalf("Err() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, conformance.ErrFailed) {
				t.Fatalf("Err() = %v, want ErrFailed", err)
			}
			var names []string
			for e := range joined(err) {
				if ce, ok := e.(*conformance.CaseError); ok {
					names = append(names, ce.Name)
					if !errors.Is(ce, conformance.ErrFailed) || !strings.HasPrefix(ce.Error(), ce.Name+": ") {
						t.Errorf("CaseError %q: Is(ErrFailed)=%v", ce.Error(), errors.Is(ce, conformance.ErrFailed))
					}
				}
			}
			if !slices.Equal(names, tc.failed) {
				t.Errorf("CaseErrors for %q, want %q", names, tc.failed)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%d of %d", len(tc.failed), len(tc.results))) {
				t.Errorf("Err() = %q does not count the failures", err)
			}
		})
	}
	for o, want := range map[conformance.Outcome]string{conformance.Pass: "PASS", conformance.Fail: "FAIL", conformance.Skip: "SKIP"} {
		if o.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(o), o.String(), want)
		}
	}
}

func TestCheckRejectsInvalidOptions(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	for name, tc := range map[string]struct {
		db   *sql.DB
		opts []conformance.Option
	}{
		"nil db":        {nil, nil},
		"bad table":     {tg.DB, []conformance.Option{conformance.WithTable(visit.Default().WithName("visit; DROP TABLE visit"))}},
		"zero timeout":  {tg.DB, []conformance.Option{conformance.WithTimeout(0)}},
		"bad run regex": {tg.DB, []conformance.Option{conformance.WithRun("(")}},
	} {
		t.Run(name, func(t *testing.T) {
			rep := conformance.Check(t.Context(), tc.db, tg.Dialect, tc.opts...)
			if len(rep.Results) != 1 || rep.Results[0].Name != "Options" || rep.Results[0].Outcome != conformance.Fail || rep.Err() == nil {
				t.Fatalf("report %+v, want one failed Options result", rep.Results)
			}
		})
	}
}

func TestCheckSelectsAndCancels(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	rep := conformance.Check(t.Context(), tg.DB, tg.Dialect, conformance.WithRun("^Keys/"))
	if len(rep.Results) != 2 || rep.Results[0].Name != "Keys/Hashed" || rep.Results[1].Name != "Keys/Plain" || rep.Err() != nil {
		t.Fatalf("WithRun(^Keys/): %+v", rep.Results)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rep = conformance.Check(ctx, tg.DB, tg.Dialect, conformance.WithRun("^Keys/"))
	for _, r := range rep.Results {
		if r.Outcome != conformance.Fail || !strings.Contains(r.Message, "not run") {
			t.Errorf("%s after cancel: %v %q", r.Name, r.Outcome, r.Message)
		}
	}
}
