package galera_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/visitsession/visitsession/session"
)

// TestCertificationFailuresAreRetried races every writing operation of
// the store on node 1 against another on node 2, on one session, with
// wsrep_retry_autocommit=0 so that each certification failure reaches
// the engine. A certification failure must never reach the caller: each
// operation either succeeds or reports what happened to the session
// (ErrNotFound after a concurrent Renew or Destroy), and the engine's
// retries are counted per operation.
func TestCertificationFailuresAreRetried(t *testing.T) {
	c := getCluster(t)
	trials := 30
	if stress() {
		trials = 300
	}
	type op func(ctx context.Context, st *session.Store, s *session.Session) error
	save := func(ctx context.Context, st *session.Store, s *session.Session) error {
		s.Set(fmt.Sprintf("k%p", s), 1)
		return st.Save(ctx, s)
	}
	renew := func(ctx context.Context, st *session.Store, s *session.Session) error { return st.Renew(ctx, s) }
	destroy := func(ctx context.Context, st *session.Store, s *session.Session) error { return st.Destroy(ctx, s) }
	touch := func(ctx context.Context, st *session.Store, s *session.Session) error { return st.Touch(ctx, s) }
	pairs := []struct {
		name string
		a, b op
	}{
		{"save/save", save, save},
		{"save/renew", save, renew},
		{"renew/renew", renew, renew},
		{"save/destroy", save, destroy},
		{"renew/destroy", renew, destroy},
		{"touch/save", touch, save},
	}
	tab := c.table(t)
	var mu sync.Mutex
	retriedOps := map[string]int{}
	hooks := session.Hooks{OnRetry: func(op string, err error) {
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1213 {
			mu.Lock()
			retriedOps[op]++
			mu.Unlock()
		}
	}}
	stores := [2]*session.Store{
		openStore(t, c.open(t, 0, "wsrep_retry_autocommit", "0"), tab, session.WithHooks(hooks)),
		openStore(t, c.open(t, 1, "wsrep_retry_autocommit", "0"), tab, session.WithHooks(hooks)),
	}
	ctx := t.Context()
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			for trial := range trials {
				base := stores[0].New()
				base.Set("trial", trial)
				if err := stores[0].Save(ctx, base); err != nil {
					t.Fatal(err)
				}
				c.sync(t, 1)
				var loaded, done sync.WaitGroup
				loaded.Add(2)
				var errs [2]error
				for w, f := range []op{p.a, p.b} {
					done.Add(1)
					go func() {
						defer done.Done()
						s, err := stores[w].Load(ctx, base.Token())
						loaded.Done()
						loaded.Wait()
						if err != nil || s.IsNew() {
							errs[w] = fmt.Errorf("load: new=%v: %w", s.IsNew(), err)
							return
						}
						errs[w] = f(ctx, stores[w], s)
					}()
				}
				done.Wait()
				for w, err := range errs {
					var me *mysql.MySQLError
					switch {
					case err == nil, errors.Is(err, session.ErrNotFound):
					case errors.As(err, &me):
						t.Fatalf("trial %d: node %d: MySQL error %d reached the caller: %v", trial, w+1, me.Number, err)
					default:
						t.Fatalf("trial %d: node %d: %v", trial, w+1, err)
					}
				}
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	var parts []string
	for op, n := range retriedOps {
		parts = append(parts, fmt.Sprintf("%s %d", op, n))
	}
	sort.Strings(parts)
	t.Logf("certification failures retried by the engine, by operation: %s", strings.Join(parts, ", "))
}
