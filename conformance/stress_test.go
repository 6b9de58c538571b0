package conformance_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/conformance"
	"github.com/visitsession/visitsession/internal/testdb"
)

// Bounds of TestStressConformance.
const (
	stressRounds     = 5 // rounds per database
	stressConcurrent = 2 // whole suites at once, on one database
	stressTimeLimit  = 5 * time.Minute
)

// TestStressConformance runs the whole suite again and again on every
// database, several suites at once, so that a case that depends on timing,
// on order or on another case's tables shows up. It runs only with
// VISITSESSION_STRESS=1 (make test-stress).
func TestStressConformance(t *testing.T) {
	if os.Getenv("VISITSESSION_STRESS") != "1" {
		t.Skip("set VISITSESSION_STRESS=1 to run the stress tests")
	}
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx, cancel := context.WithTimeout(t.Context(), stressTimeLimit)
		defer cancel()
		var wg sync.WaitGroup
		for w := range stressConcurrent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := w; round < stressRounds; round += stressConcurrent {
					rep := conformance.Check(ctx, tg.DB, tg.Dialect, opener(tg))
					for _, r := range rep.Results {
						if r.Outcome == conformance.Fail {
							t.Errorf("round %d: %s: %s", round, r.Name, r.Message)
						}
					}
				}
			}()
		}
		wg.Wait()
	})
}
