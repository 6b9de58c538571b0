package galera_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// Parameters of the read-mostly workload.
const (
	benchSessions = 10_000
	benchClients  = 8
	benchWritePct = 5
)

// BenchmarkReadMostly runs the read-mostly workload: benchClients clients,
// each request picking one of benchSessions sessions at random and, in 95%
// of requests, loading it (one SELECT), in 5%, loading it, changing a
// value and saving it (one SELECT and one conditional UPDATE). It reports
// requests per second
//
//   - one-node: all clients on one application instance on node 1;
//   - three-nodes: the clients spread over three instances, one per node,
//     each with its own pool and Store;
//   - three-nodes-causal: the same with wsrep_sync_wait=1 on the pools,
//     which a deployment needs when a visitor's consecutive requests may
//     reach different nodes (see TestReadYourWritesAcrossNodes).
//
// Every node replicates every write, so spreading the clients spreads the
// reads and the client side of the writes, not the work of applying
// them.
func BenchmarkReadMostly(b *testing.B) {
	c := getCluster(b)
	tab := c.table(b)
	toks := seedSessions(b, c, tab, benchSessions)
	for _, tc := range []struct {
		name   string
		nodes  []int
		params []string
	}{
		{"one-node", []int{0}, nil},
		{"three-nodes", []int{0, 1, 2}, nil},
		{"three-nodes-causal", []int{0, 1, 2}, []string{"wsrep_sync_wait", "1"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var stores []*session.Store
			for _, n := range tc.nodes {
				stores = append(stores, openStore(b, c.open(b, n, tc.params...), tab))
			}
			var next, writes, failed atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for client := range benchClients {
				st := stores[client%len(stores)]
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(client), uint64(time.Now().UnixNano())))
					ctx := context.Background()
					for next.Add(1) <= int64(b.N) {
						s, err := st.Load(ctx, toks[rng.IntN(len(toks))])
						if err == nil && s.IsNew() {
							err = fmt.Errorf("session not found")
						}
						if err == nil && rng.IntN(100) < benchWritePct {
							writes.Add(1)
							s.Set("visits", s.GetInt("visits")+1)
							err = st.Save(ctx, s)
						}
						if err != nil {
							failed.Add(1)
							b.Errorf("client %d: %v", client, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(0, "ns/op") // the rate above is the measure; 8 clients share one b.N
			var conflicts, retries uint64
			for _, st := range stores {
				conflicts += st.Stats().Conflicts
				retries += st.Stats().Retries
			}
			if elapsed > time.Second {
				b.Logf("%d requests (%d writes) in %v over %d node(s): %.0f req/s; conflicts %d, retries %d",
					b.N, writes.Load(), elapsed.Round(time.Millisecond), len(stores), float64(b.N)/elapsed.Seconds(), conflicts, retries)
			}
		})
	}
}

// seedSessions writes n live sessions holding the data a typical signed-in
// visitor has, and returns their tokens.
func seedSessions(b *testing.B, c *cluster, tab visit.Table, n int) []string {
	b.Helper()
	ctx := context.Background()
	st := openStore(b, c.checks[0], tab)
	proto := st.New()
	proto.Set("user_id", int64(4242))
	proto.Set("name", "Ada Lovelace")
	proto.Set("roles", []string{"editor", "viewer"})
	proto.Set("csrf", "b5f1c0f8a4c9d2e7b6a3f0e1d2c3b4a5")
	proto.Set("visits", 0)
	if err := st.Save(ctx, proto); err != nil {
		b.Fatal(err)
	}
	d := dialect.MySQL()
	var data []byte
	if err := c.checks[0].QueryRowContext(ctx, "SELECT "+d.Quote(tab.Data)+" FROM "+d.Quote(tab.Name)+" WHERE "+d.Quote(tab.Key)+" = ?",
		visit.HashToken(proto.Token())).Scan(&data); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	toks := make([]string, n)
	rows := make([]storedRow, n)
	for i := range toks {
		toks[i] = visit.NewToken()
		rows[i] = storedRow{key: visit.HashToken(toks[i]), data: data, created: now, expiry: now.Add(2 * time.Hour), version: 1}
	}
	insertRows(b, c, tab, rows)
	for i := range c.nodes {
		c.sync(b, i)
	}
	return toks
}
