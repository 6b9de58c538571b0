package galera_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/visitsession/visitsession/conformance"
	"github.com/visitsession/visitsession/dialect"
)

// TestConformance runs the whole behaviour suite against each node, every
// case on a scratch table of its own. DDL replicates in total order, so a
// table created through one node is there on the others. The last run
// puts the second application instance of the cases that have one on
// another node, with causal reads on both pools, as an application behind
// a load balancer needs them (see TestReadYourWritesAcrossNodes).
func TestConformance(t *testing.T) {
	c := getCluster(t)
	type run struct {
		name          string
		first, second int
		params        []string
	}
	var runs []run
	for i := range c.nodes {
		runs = append(runs, run{fmt.Sprintf("node%d", i+1), i, i, nil})
	}
	runs = append(runs, run{"node1+node2", 0, 1, []string{"wsrep_sync_wait", "1"}})
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			db := c.open(t, r.first, r.params...)
			second := withParams(c.nodes[r.second], r.params...).FormatDSN()
			conformance.Run(t, db, dialect.MySQL(), conformance.WithOpener(func(context.Context) (*sql.DB, error) {
				return sql.Open("mysql", second)
			}))
		})
	}
}
