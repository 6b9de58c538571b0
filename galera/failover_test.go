package galera_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visitsession/visitsession/session"
)

// galeraScript returns the command that kills and restarts nodes, and
// the base directory argument to pass it, or skips t when
// VISITSESSION_GALERA_SCRIPT is "none".
func galeraScript(t *testing.T) (script string, base []string) {
	t.Helper()
	script = os.Getenv(envScript)
	switch script {
	case "none":
		t.Skipf("%s=none: the tests do not control the cluster's nodes", envScript)
	case "":
		abs, err := filepath.Abs(filepath.Join("..", "scripts", "galera.sh"))
		if err != nil {
			t.Fatal(err)
		}
		script = abs
	}
	if b := os.Getenv(envBase); b != "" {
		base = []string{b}
	}
	return script, base
}

// runScript runs script with args and logs its output.
func runScript(t *testing.T, script string, base []string, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, script, append(args, base...)...).CombinedOutput()
	t.Logf("%s %v (%v): %s", filepath.Base(script), args, time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		return fmt.Errorf("%s %v: %w", script, args, err)
	}
	return nil
}

// TestNodeFailure kills node 3 while application instances on all three
// nodes write to shared sessions. The instances on nodes 1 and 2 must
// keep serving without an error, every write acknowledged before, during
// and after the failure (by any instance, node 3's included) must be
// there, and node 3 must rejoin, catch up and serve again before the test
// ends.
func TestNodeFailure(t *testing.T) {
	c := getCluster(t)
	script, base := galeraScript(t)
	const victim = 2 // node 3
	tab := c.table(t)
	var stores [3]*session.Store
	for i := range stores {
		stores[i] = openStore(t, c.open(t, i), tab)
	}
	ctx := t.Context()
	const sessions = 4
	toks := make([]string, sessions)
	for s := range toks {
		sess := stores[0].New()
		sess.Set("session", s)
		if err := stores[0].Save(ctx, sess); err != nil {
			t.Fatal(err)
		}
		toks[s] = sess.Token()
	}
	for i := range c.nodes {
		c.sync(t, i)
	}

	// A node that is down must come back whatever happens to the test.
	var killed, restarted atomic.Bool
	t.Cleanup(func() {
		if killed.Load() && !restarted.Load() {
			if err := runScript(t, script, base, "restart", "3"); err != nil {
				t.Errorf("restoring node 3: %v", err)
			}
		}
	})

	type ack struct {
		session int
		key     string
		value   int
	}
	var (
		mu          sync.Mutex
		acks        []ack
		served      [3]atomic.Int64 // acknowledged writes per node
		slowest     [3]atomic.Int64 // longest acknowledged write per node, ns
		victimErrs  errorCounts
		gaveUp      atomic.Int64
		stopWriting = make(chan struct{})
		wg          sync.WaitGroup
	)
	write := func(node, s, j int) error {
		// Each write gets its own deadline, not the test's cancellation.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		sess, err := stores[node].Load(ctx, toks[s])
		if err != nil {
			return err
		}
		if sess.IsNew() {
			return errors.New("the session was not found")
		}
		sess.Set(fmt.Sprintf("n%d.%d", node+1, j), j)
		return stores[node].Save(ctx, sess)
	}
	for s := range sessions {
		for node := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; ; j++ {
					select {
					case <-stopWriting:
						return
					case <-time.After(2 * time.Millisecond):
					}
					start := time.Now()
					err := write(node, s, j)
					switch {
					case err == nil:
						d := int64(time.Since(start))
						for {
							if old := slowest[node].Load(); d <= old || slowest[node].CompareAndSwap(old, d) {
								break
							}
						}
						served[node].Add(1)
						mu.Lock()
						acks = append(acks, ack{s, fmt.Sprintf("n%d.%d", node+1, j), j})
						mu.Unlock()
					case errors.Is(err, session.ErrConflict):
						gaveUp.Add(1) // not acknowledged: the key may rightly be missing
					case node == victim && killed.Load():
						victimErrs.add(err)
						return // its node is gone; the instance stops writing
					default:
						t.Errorf("instance on node %d, session %d: %v", node+1, s, err)
						return
					}
				}
			}()
		}
	}
	stopAll := func() {
		select {
		case <-stopWriting:
		default:
			close(stopWriting)
		}
		wg.Wait()
	}
	t.Cleanup(stopAll)

	time.Sleep(time.Second)
	before := [3]int64{served[0].Load(), served[1].Load(), served[2].Load()}
	killed.Store(true)
	if err := runScript(t, script, base, "kill", "3"); err != nil {
		t.Fatal(err)
	}
	atKill := [3]int64{served[0].Load(), served[1].Load(), served[2].Load()}
	time.Sleep(time.Second)
	for node := range victim {
		if served[node].Load() == atKill[node] {
			t.Errorf("the instance on node %d served no write in the second after node 3 was gone", node+1)
		}
	}
	// Node 3 rejoins while nodes 1 and 2 keep taking writes, which it
	// must catch up with.
	if err := runScript(t, script, base, "restart", "3"); err != nil {
		t.Fatal(err)
	}
	restarted.Store(true)
	time.Sleep(500 * time.Millisecond)
	stopAll()

	// The instance on node 3 serves again, on the same pool and Store.
	for s := range sessions {
		if err := write(victim, s, -1); err != nil {
			t.Errorf("the instance on node 3 after the node rejoined, session %d: %v", s, err)
			continue
		}
		acks = append(acks, ack{s, "n3.-1", -1})
	}

	// Every acknowledged write is on every node.
	for node := range c.nodes {
		checker := openStore(t, c.checks[node], tab)
		for s, tok := range toks {
			got, err := checker.Load(ctx, tok)
			if err != nil || got.IsNew() {
				t.Fatalf("node %d: session %d does not load: new=%v err=%v", node+1, s, got.IsNew(), err)
			}
			for _, a := range acks {
				if a.session == s && got.GetInt(a.key) != a.value {
					t.Fatalf("node %d: acknowledged write %s of session %d is missing", node+1, a.key, s)
				}
			}
		}
	}
	var conflicts, retries uint64
	for _, st := range stores {
		conflicts += st.Stats().Conflicts
		retries += st.Stats().Retries
	}
	t.Logf("acknowledged writes: %d in all; per node before the kill %v, while node 3 was down %v, in all %v; "+
		"slowest acknowledged write per node %v / %v / %v; conflicts %d, statement retries %d, saves given up %d; "+
		"node 3's instance stopped on: %s",
		len(acks), before, [3]int64{served[0].Load() - atKill[0], served[1].Load() - atKill[1], 0},
		[3]int64{served[0].Load(), served[1].Load(), served[2].Load()},
		time.Duration(slowest[0].Load()).Round(time.Millisecond), time.Duration(slowest[1].Load()).Round(time.Millisecond),
		time.Duration(slowest[2].Load()).Round(time.Millisecond), conflicts, retries, gaveUp.Load(), victimErrs.String())
}
