package galera_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// TestTwoNodeLostUpdates races two application instances, one on node 1
// and one on node 2, each with its own pool and Store, over one session:
// in every trial both load the same version (a barrier holds each until
// the other has loaded), then each sets a key of its own and saves at the
// same moment. Whichever commits second must notice, through the version
// check or through a certification failure that the engine retries, and
// re-apply its key on the winner's data: no trial may end without both
// keys.
//
// It runs twice: with the server's default wsrep_retry_autocommit=1, where
// the node itself runs a statement that failed certification once more
// before reporting it, and with 0, where every certification failure
// reaches the engine.
func TestTwoNodeLostUpdates(t *testing.T) {
	c := getCluster(t)
	trials := 100
	if stress() {
		trials = 1000
	}
	for _, tc := range []struct {
		name   string
		params []string
	}{
		{"server-retries-once", nil},
		{"engine-retries-all", []string{"wsrep_retry_autocommit", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lostUpdateTrials(t, c, trials, tc.params)
		})
	}
}

func lostUpdateTrials(t *testing.T, c *cluster, trials int, params []string) {
	ctx := t.Context()
	tab := c.table(t)
	var retried errorCounts
	hooks := session.Hooks{OnRetry: func(_ string, err error) { retried.add(err) }}
	stores := [2]*session.Store{
		openStore(t, c.open(t, 0, params...), tab, session.WithHooks(hooks)),
		openStore(t, c.open(t, 1, params...), tab, session.WithHooks(hooks)),
	}
	// The checker reads on node 3, waiting for every committed write.
	checker := openStore(t, c.checks[2], tab)
	keys := [2]string{"from_node1", "from_node2"}

	lost, failures, certified := 0, 0, 0
	start := time.Now()
	for trial := range trials {
		base := stores[trial%2].New()
		base.Set("trial", trial)
		if err := stores[trial%2].Save(ctx, base); err != nil {
			t.Fatalf("trial %d: create: %v", trial, err)
		}
		tok := base.Token()
		c.sync(t, (trial+1)%2) // the other node has the new row
		retriesBefore := stores[0].Stats().Retries + stores[1].Stats().Retries

		var loaded, done sync.WaitGroup
		loaded.Add(2)
		var errs [2]error
		for w, st := range stores {
			done.Add(1)
			go func() {
				defer done.Done()
				s, err := st.Load(ctx, tok)
				loaded.Done()
				loaded.Wait() // both have read the same version
				switch {
				case err != nil:
					errs[w] = fmt.Errorf("load: %w", err)
				case s.IsNew():
					errs[w] = errors.New("load: the session was not found")
				default:
					s.Set(keys[w], trial)
					errs[w] = st.Save(ctx, s)
				}
			}()
		}
		done.Wait()
		if stores[0].Stats().Retries+stores[1].Stats().Retries > retriesBefore {
			certified++
		}

		got, err := checker.Load(ctx, tok)
		if err != nil || got.IsNew() {
			t.Fatalf("trial %d: the session does not load on node 3: new=%v err=%v", trial, got.IsNew(), err)
		}
		saved := 0
		for w := range stores {
			switch {
			case errors.Is(errs[w], session.ErrConflict):
				failures++ // gave up after every attempt: the key is rightly missing
			case errs[w] != nil:
				t.Fatalf("trial %d: instance on node %d: %v", trial, w+1, errs[w])
			case got.GetInt(keys[w]) != trial:
				lost++
				t.Errorf("trial %d: the save from node %d returned nil, but its key is missing: %v", trial, w+1, got.Values())
			default:
				saved++
			}
		}
		if got.GetInt("trial") != trial {
			t.Errorf("trial %d: the key both left alone changed: %v", trial, got.Values())
		}
		if v := version(t, c, tab, tok); v != int64(1+saved) {
			t.Errorf("trial %d: version %d after %d successful saves of a new session, want %d", trial, v, saved, 1+saved)
		}
	}
	elapsed := time.Since(start)

	a, b := stores[0].Stats(), stores[1].Stats()
	conflicts := a.Conflicts + b.Conflicts
	t.Logf("%d trials in %v: lost updates %d; conflicts %d (node 1: %d, node 2: %d); saves given up with ErrConflict %d; "+
		"statement retries %d (node 1: %d, node 2: %d) by error: %s; trials with a retried certification failure %d",
		trials, elapsed.Round(time.Millisecond), lost, conflicts, a.Conflicts, b.Conflicts, failures,
		a.Retries+b.Retries, a.Retries, b.Retries, retried.String(), certified)
	if lost > 0 {
		t.Errorf("%d updates lost in %d trials", lost, trials)
	}
	// In each trial one of the two saves ran against a version that the
	// other had already replaced: the race must have been seen.
	if conflicts < uint64(trials) {
		t.Errorf("%d conflicts in %d trials: the saves did not race", conflicts, trials)
	}
	if failures > 0 {
		t.Errorf("%d saves gave up with ErrConflict against a single concurrent writer", failures)
	}
}

// version reads the version column of tok's row on node 3, after every
// committed write.
func version(t *testing.T, c *cluster, tab visit.Table, tok string) int64 {
	t.Helper()
	d := dialect.MySQL()
	var v int64
	q := "SELECT " + d.Quote(tab.Version) + " FROM " + d.Quote(tab.Name) + " WHERE " + d.Quote(tab.Key) + " = ?"
	if err := c.checks[2].QueryRowContext(context.Background(), q, visit.HashToken(tok)).Scan(&v); err != nil {
		t.Fatalf("read version: %v", err)
	}
	return v
}
