package galera_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// Environment variables read by the tests.
const (
	envEnable = "VISITSESSION_GALERA"
	envDSNs   = "VISITSESSION_GALERA_DSNS"
	envScript = "VISITSESSION_GALERA_SCRIPT"
	envBase   = "VISITSESSION_GALERA_BASE"
	envStress = "VISITSESSION_STRESS"
)

// defaultDSNs are the nodes scripts/galera.sh starts.
const defaultDSNs = "root@tcp(127.0.0.1:3407)/,root@tcp(127.0.0.1:3408)/,root@tcp(127.0.0.1:3409)/"

// cluster is the Galera cluster under test, with the database created for
// this run of the test binary.
type cluster struct {
	// dbName is the run's database, created on node 1 and dropped by
	// TestMain.
	dbName string
	// nodes holds one driver configuration per node, on dbName.
	nodes []*mysql.Config
	// checks holds one pool per node whose reads wait until the node has
	// applied every write committed anywhere in the cluster before the
	// read began (wsrep_sync_wait=1), for setting up and checking.
	checks []*sql.DB
}

var (
	clusterOnce sync.Once
	theCluster  *cluster
	clusterErr  error
)

func TestMain(m *testing.M) {
	// The driver logs each connection a killed node breaks; the tests
	// report what matters.
	_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	code := m.Run()
	if theCluster != nil {
		theCluster.drop()
	}
	os.Exit(code)
}

// getCluster returns the cluster, connecting on first use. Without
// VISITSESSION_GALERA=1 it skips tb; with it, an unreachable or unhealthy
// cluster fails tb.
func getCluster(tb testing.TB) *cluster {
	tb.Helper()
	if os.Getenv(envEnable) != "1" {
		tb.Skipf("no Galera cluster: set %s=1, and %s when the nodes are not the ones scripts/galera.sh starts", envEnable, envDSNs)
	}
	clusterOnce.Do(func() { theCluster, clusterErr = connect() })
	if clusterErr != nil {
		tb.Fatalf("Galera cluster unavailable (%s=1, nodes from %s): %v", envEnable, envDSNs, clusterErr)
	}
	return theCluster
}

// connect checks that every node is a Synced member of one primary
// component, and creates the run's database.
func connect() (*cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	list := os.Getenv(envDSNs)
	if list == "" {
		list = defaultDSNs
	}
	var bases []*mysql.Config
	for i, dsn := range strings.Split(list, ",") {
		cfg, err := mysql.ParseDSN(strings.TrimSpace(dsn))
		if err != nil {
			return nil, fmt.Errorf("node %d: %s: %w", i+1, envDSNs, err)
		}
		bases = append(bases, cfg)
	}
	if len(bases) < 3 {
		return nil, fmt.Errorf("%s names %d nodes; the tests need 3", envDSNs, len(bases))
	}
	for i, cfg := range bases {
		if err := checkNode(ctx, cfg, len(bases)); err != nil {
			return nil, fmt.Errorf("node %d (%s): %w", i+1, cfg.Addr, err)
		}
	}
	c := &cluster{dbName: "vs_galera_" + randomHex(6)}
	admin, err := sql.Open("mysql", bases[0].FormatDSN())
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+c.dbName); err != nil {
		return nil, fmt.Errorf("node 1 (%s): create database: %w", bases[0].Addr, err)
	}
	for _, base := range bases {
		cfg := base.Clone()
		cfg.DBName = c.dbName
		cfg.Timeout = 5 * time.Second
		c.nodes = append(c.nodes, cfg)
		check, err := sql.Open("mysql", withParams(cfg, "wsrep_sync_wait", "1").FormatDSN())
		if err != nil {
			c.drop()
			return nil, err
		}
		c.checks = append(c.checks, check)
	}
	// CREATE DATABASE replicates in total order, but a node may take a
	// moment to run it; connecting to a database is not a read that
	// wsrep_sync_wait holds back.
	for i, check := range c.checks {
		for {
			err := check.PingContext(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				c.drop()
				return nil, fmt.Errorf("node %d (%s): the new database is not there: %w", i+1, c.nodes[i].Addr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c, nil
}

// checkNode fails unless the node at cfg is a Synced member of a primary
// component of at least size nodes.
func checkNode(ctx context.Context, cfg *mysql.Config, size int) error {
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	status := map[string]string{}
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN "+
		"('wsrep_ready', 'wsrep_cluster_status', 'wsrep_local_state_comment', 'wsrep_cluster_size')")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		status[strings.ToLower(k)] = v
	}
	if err := rows.Err(); err != nil {
		return err
	}
	n, _ := strconv.Atoi(status["wsrep_cluster_size"])
	if status["wsrep_ready"] != "ON" || status["wsrep_cluster_status"] != "Primary" ||
		status["wsrep_local_state_comment"] != "Synced" || n < size {
		return fmt.Errorf("not a Synced node of a primary cluster of %d: %v", size, status)
	}
	return nil
}

// drop removes the run's database and closes the pools.
func (c *cluster) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, check := range c.checks {
		check.Close()
	}
	// Any node will do; one may be down after a failed test.
	for _, node := range c.nodes {
		cfg := node.Clone()
		cfg.DBName = ""
		admin, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			continue
		}
		_, err = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+c.dbName)
		admin.Close()
		if err == nil {
			return
		}
	}
}

// withParams returns a copy of cfg that sets the given session variables
// (name, value pairs) on every connection.
func withParams(cfg *mysql.Config, kv ...string) *mysql.Config {
	cfg = cfg.Clone()
	if len(kv) == 0 {
		return cfg
	}
	params := map[string]string{}
	for k, v := range cfg.Params {
		params[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		params[kv[i]] = kv[i+1]
	}
	cfg.Params = params
	return cfg
}

// open returns a new pool on node i (from 0), as an application instance
// has, closed when tb ends. kv are session variables to set on each
// connection, as name, value pairs.
func (c *cluster) open(tb testing.TB, i int, kv ...string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("mysql", withParams(c.nodes[i], kv...).FormatDSN())
	if err != nil {
		tb.Fatalf("open node %d: %v", i+1, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// sync returns once node i has applied every write committed in the
// cluster so far.
func (c *cluster) sync(tb testing.TB, i int) {
	tb.Helper()
	var one int
	if err := c.checks[i].QueryRowContext(context.Background(), "SELECT 1").Scan(&one); err != nil {
		tb.Fatalf("sync node %d: %v", i+1, err)
	}
}

// table creates a fresh visit table, seen by every node when it returns,
// and drops it when tb ends.
func (c *cluster) table(tb testing.TB) visit.Table {
	tb.Helper()
	ctx := context.Background()
	tab := visit.Default().WithName("visit_" + randomHex(6))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, check := range c.checks {
			if _, err := check.ExecContext(ctx, "DROP TABLE IF EXISTS "+dialect.MySQL().Quote(tab.Name)); err == nil {
				return
			}
		}
	})
	if _, err := visit.Migrate(ctx, c.checks[0], dialect.MySQL(), tab); err != nil {
		tb.Fatalf("migrate %s on node 1: %v", tab.Name, err)
	}
	for i, check := range c.checks {
		in, err := visit.Inspect(ctx, check, dialect.MySQL(), tab)
		if err != nil || !in.Exists || len(in.Missing) > 0 {
			tb.Fatalf("node %d does not see the new table: %+v, %v", i+1, in, err)
		}
	}
	return tab
}

// openStore opens a Store on db for tab, closed when tb ends.
func openStore(tb testing.TB, db *sql.DB, tab visit.Table, opts ...session.Option) *session.Store {
	tb.Helper()
	st, err := session.Open(context.Background(), db, dialect.MySQL(), append([]session.Option{session.WithTable(tab)}, opts...)...)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// errorCounts counts errors by MySQL error number, for the logs.
type errorCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *errorCounts) add(err error) {
	key := err.Error()
	if len(key) > 80 {
		key = key[:80] + "..."
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		key = strconv.Itoa(int(me.Number))
		if me.Number == 1213 {
			key = "1213 (deadlock or certification failure)"
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = map[string]int{}
	}
	e.n[key]++
}

func (e *errorCounts) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.n) == 0 {
		return "none"
	}
	var parts []string
	for k, v := range e.n {
		parts = append(parts, fmt.Sprintf("%s: %d", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// testLogger returns a logger that writes records at level and above to
// tb's log while tb runs, and drops them afterwards.
func testLogger(tb testing.TB, level slog.Level) *slog.Logger {
	w := &testWriter{tb: tb}
	tb.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// discard is a logger that drops everything.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// stress reports whether VISITSESSION_STRESS=1 asks for many trials.
func stress() bool { return os.Getenv(envStress) == "1" }
