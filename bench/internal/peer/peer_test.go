package peer_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/visitsession/visitsession/bench/internal/countdriver"
	"github.com/visitsession/visitsession/bench/internal/peer"
)

// open returns a fresh database of kind, or skips when its server is
// unreachable.
func open(t *testing.T, kind string) *peer.Database {
	t.Helper()
	ctx := context.Background()
	db, err := peer.Open(ctx, kind, peer.OpenOptions{
		PostgresDSN: os.Getenv("VISITSESSION_POSTGRES_DSN"),
		MySQLDSN:    os.Getenv("VISITSESSION_MYSQL_DSN"),
		TempDir:     t.TempDir(),
		Pool:        4,
	})
	if err != nil {
		if kind == "sqlite" || os.Getenv("VISITSESSION_REQUIRE_ALL") == "1" {
			t.Fatal(err)
		}
		t.Skipf("%s unreachable (set VISITSESSION_POSTGRES_DSN or VISITSESSION_MYSQL_DSN): %v", kind, err)
	}
	t.Cleanup(func() { _ = db.Close(context.WithoutCancel(ctx)) })
	return db
}

// TestRun runs every contender on every database with a small workload
// and checks the statements each one sends: one SELECT per request for
// all; for writes, one per write request and, on read-only requests,
// one per request for scs with IdleTimeout and none for the others.
func TestRun(t *testing.T) {
	w := peer.Workload{Sessions: 50, Clients: 4, Requests: 400, Duration: time.Minute, Slices: 2, WriteShare: 0.2, Seed: 7}
	for _, kind := range peer.Kinds {
		t.Run(kind, func(t *testing.T) {
			db := open(t, kind)
			results, err := peer.Run(context.Background(), db, peer.Contenders(), w, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			if len(results) != 3 {
				t.Fatalf("%d results, want 3", len(results))
			}
			for _, res := range results {
				t.Run(res.Contender.Name, func(t *testing.T) {
					if res.Failed != "" {
						t.Fatal(res.Failed)
					}
					if res.Errors != 0 {
						t.Fatalf("%d errors, the first: %s", res.Errors, res.FirstError)
					}
					if res.Requests() != 400 || res.Writes == 0 || res.Reads == 0 || len(res.SliceRPS) != 2 {
						t.Fatalf("%d reads and %d writes in %d slices, want 400 requests of both kinds in 2", res.Reads, res.Writes, len(res.SliceRPS))
					}
					if n := res.Stmts.Get(countdriver.Select); n != res.Requests()+res.Conflicts {
						t.Errorf("%d SELECTs for %d requests and %d conflicts", n, res.Requests(), res.Conflicts)
					}
					wantReadWrites := 0.0
					if res.Contender.Name == "scs-idle" {
						wantReadWrites = 100
					}
					if got := res.ReadWritesPer100(); got != wantReadWrites {
						t.Errorf("%.2f writes per 100 read-only requests, want %.0f (statements %+v)", got, wantReadWrites, res.Stmts)
					}
				})
			}
			var tables int
			if err := db.DB.QueryRowContext(context.Background(), tableCount[kind]).Scan(&tables); err != nil || tables != 0 {
				t.Errorf("%d tables left after the run (%v), want 0", tables, err)
			}
		})
	}
}

// tableCount counts the tables of the current database.
var tableCount = map[string]string{
	"postgres": "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
	"mysql":    "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()",
	"sqlite":   "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
}

// TestRunIdleSpread checks that visitsession touches the sessions whose
// touch is due, and only those: with sessions last used up to twice the
// touch interval (a tenth of the idle timeout) ago, half are due, each
// touched once (twice at times, when both clients load it before either
// has touched it).
func TestRunIdleSpread(t *testing.T) {
	db := open(t, "sqlite")
	w := peer.Workload{Sessions: 100, Clients: 2, Requests: 1000, Duration: time.Minute, IdleSpread: 2 * (peer.IdleTimeout / 10)}
	results, err := peer.Run(context.Background(), db, peer.Contenders()[:1], w, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	res := results[0]
	if res.Failed != "" || res.Errors != 0 {
		t.Fatalf("failed %q; %d errors, the first: %s", res.Failed, res.Errors, res.FirstError)
	}
	touches := res.Stmts.Get(countdriver.Update)
	if touches < 45 || touches > 60 {
		t.Errorf("%d touches of 100 sessions, 50 of them due: want about 50", touches)
	}
}
