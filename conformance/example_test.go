package conformance_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers "sqlite"

	"github.com/visitsession/visitsession/conformance"
	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

// ExampleCheck runs the suite outside go test, on a SQLite file, as
// "visitsession conformance" does. Each case works on a scratch table of
// its own and drops it.
func ExampleCheck() {
	dir, err := os.MkdirTemp("", "conformance-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	// busy_timeout lets the concurrent cases wait for SQLite's write lock.
	dsn := dialect.SQLiteFileDSN(filepath.Join(dir, "app.db"))
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	report := conformance.Check(context.Background(), db, dialect.SQLite())
	for _, r := range report.Results {
		if r.Outcome == conformance.Fail {
			fmt.Printf("FAIL %s: %s\n", r.Name, r.Message)
		}
	}
	fmt.Println("every case reported:", len(report.Results) == len(conformance.CaseNames()))
	fmt.Println("conforms:", report.Err() == nil)
	// Output:
	// every case reported: true
	// conforms: true
}

// ExampleWithTable checks an application's existing visit table: the
// cases touch only rows they create, and delete them when they end.
func ExampleWithTable() {
	dir, err := os.MkdirTemp("", "conformance-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", dialect.SQLiteFileDSN(filepath.Join(dir, "app.db")))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	ctx := context.Background()
	// The application's table, with one visit of its own.
	if _, err := db.ExecContext(ctx, `CREATE TABLE visit (visit_key VARCHAR(40) NOT NULL PRIMARY KEY, session_data BLOB NULL,
		created INTEGER NOT NULL, expiry INTEGER NOT NULL, version INTEGER NOT NULL DEFAULT 0)`); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO visit VALUES ('app-row', x'00', 0, 0, 1)`); err != nil {
		fmt.Println(err)
		return
	}

	report := conformance.Check(ctx, db, dialect.SQLite(), conformance.WithRun("^(Load|Save|Keys)/"),
		conformance.WithTable(visit.Default()))
	fmt.Println(report.Summary())

	var rows int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM visit").Scan(&rows); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("rows left:", rows)
	// Output:
	// 10 passed, 0 failed
	// rows left: 1
}
