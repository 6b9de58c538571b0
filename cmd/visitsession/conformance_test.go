package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/visitsession/visitsession/conformance"
	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

// conformanceDSN returns the DSN of a fresh SQLite file in a temporary
// directory, as a user would pass it.
func conformanceDSN(t *testing.T) string {
	t.Helper()
	return dialect.SQLiteFileDSN(filepath.Join(t.TempDir(), "conformance.db"))
}

// runCLI runs "visitsession conformance args..." in-process.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"conformance"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

var (
	caseLine    = regexp.MustCompile(`^(PASS [A-Za-z0-9]+/[A-Za-z0-9]+|(FAIL|SKIP) [A-Za-z0-9]+/[A-Za-z0-9]+: .+)$`)
	summaryLine = regexp.MustCompile(`^(\d+) passed, (\d+) failed(, (\d+) skipped)?$`)
)

// parseReport checks the output format and returns the counts of the
// summary line and the case lines by outcome.
func parseReport(t *testing.T, out string) (summary [3]int, lines map[string][]string) {
	t.Helper()
	all := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(all) < 2 {
		t.Fatalf("output has %d lines:\n%s", len(all), out)
	}
	lines = map[string][]string{}
	for _, l := range all[:len(all)-1] {
		if !caseLine.MatchString(l) {
			t.Fatalf("malformed case line %q", l)
		}
		lines[l[:4]] = append(lines[l[:4]], l)
	}
	m := summaryLine.FindStringSubmatch(all[len(all)-1])
	if m == nil {
		t.Fatalf("malformed last line %q", all[len(all)-1])
	}
	for i, s := range []string{m[1], m[2], m[4]} {
		if s != "" {
			summary[i], _ = strconv.Atoi(s)
		}
	}
	if summary[2] == 0 && m[3] != "" {
		t.Fatalf("last line %q reports zero skipped; it must then leave the count out", all[len(all)-1])
	}
	if summary[0] != len(lines["PASS"]) || summary[1] != len(lines["FAIL"]) || summary[2] != len(lines["SKIP"]) {
		t.Fatalf("summary %v does not count the %d PASS, %d FAIL, %d SKIP lines", summary, len(lines["PASS"]), len(lines["FAIL"]), len(lines["SKIP"]))
	}
	return summary, lines
}

func TestConformanceCommandPasses(t *testing.T) {
	dsn := conformanceDSN(t)
	code, out, errOut := runCLI(t, "--driver", "sqlite", "--dsn", dsn)
	if code != 0 {
		t.Fatalf("exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	summary, _ := parseReport(t, out)
	if summary[1] != 0 || summary[0]+summary[2] != len(conformance.CaseNames()) {
		t.Fatalf("summary %v, want all %d cases passed or skipped", summary, len(conformance.CaseNames()))
	}
	if strings.Contains(out+errOut, filepath.Dir(strings.TrimPrefix(dsn, "file:"))) {
		t.Fatal("the output contains the DSN")
	}
}

func TestConformanceCommandFails(t *testing.T) {
	// A --table that does not exist: every case on it fails; the cases on
	// scratch tables still pass.
	code, out, errOut := runCLI(t, "--driver", "sqlite", "--dsn", conformanceDSN(t), "--table", "no_such_visit", "--run", "^(Keys|Schema)/")
	if code != 1 {
		t.Fatalf("exit status %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	summary, lines := parseReport(t, out)
	if summary != [3]int{2, 2, 0} {
		t.Fatalf("summary %v, want 2 passed (Schema) and 2 failed (Keys):\n%s", summary, out)
	}
	for _, l := range lines["FAIL"] {
		if !strings.HasPrefix(l, "FAIL Keys/") || !strings.Contains(l, "does not exist") {
			t.Errorf("failure line %q: want a Keys case naming the missing table", l)
		}
	}
}

func TestConformanceCommandRealTable(t *testing.T) {
	dsn := conformanceDSN(t)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	tab := visit.Default().WithName("app_visit")
	if _, err := visit.Migrate(ctx, db, dialect.SQLite(), tab); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO app_visit (visit_key, session_data, created, expiry, version) VALUES ('k', x'01', 1, 2, 5)`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "--driver", "sqlite", "--dsn", dsn, "--table", "app_visit", "--run", "^(Load|Save|Keys|Data)/")
	if code != 0 {
		t.Fatalf("exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var n int
	var row string
	if err := db.QueryRow(`SELECT count(*), max(visit_key || hex(session_data) || created || expiry || version) FROM app_visit`).Scan(&n, &row); err != nil {
		t.Fatal(err)
	}
	if n != 1 || row != "k01125" {
		t.Fatalf("after the suite the table holds %d rows (%q), want only the application's row unchanged", n, row)
	}
}

func TestConformanceCommandUsage(t *testing.T) {
	dsn := conformanceDSN(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown driver", []string{"--driver", "oracle", "--dsn", dsn}, 2, "unknown --driver"},
		{"no driver", []string{"--dsn", dsn}, 2, "unknown --driver"},
		{"no dsn", []string{"--driver", "sqlite"}, 2, "--dsn is required"},
		{"bad run pattern", []string{"--driver", "sqlite", "--dsn", dsn, "--run", "("}, 2, "--run"},
		{"bad table name", []string{"--driver", "sqlite", "--dsn", dsn, "--table", "visit;drop"}, 2, "--table"},
		{"extra argument", []string{"--driver", "sqlite", "--dsn", dsn, "extra"}, 2, "unexpected argument"},
		{"unknown flag", []string{"--nope"}, 2, "flag provided but not defined"},
		{"help", []string{"-h"}, 0, "--table NAME"},
		{"unreachable database", []string{"--driver", "sqlite", "--dsn", "file:" + filepath.Join(t.TempDir(), "missing", "dir", "x.db") + "?mode=rw"}, 1, "connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) {
				t.Fatalf("exit status %d, stderr %q; want %d and a message with %q", code, errOut, tc.code, tc.msg)
			}
			if out != "" {
				t.Fatalf("stdout %q, want nothing", out)
			}
		})
	}
}

func ExampleOutcome() {
	fmt.Println(conformance.Pass, conformance.Fail, conformance.Skip)
	// Output: PASS FAIL SKIP
}
