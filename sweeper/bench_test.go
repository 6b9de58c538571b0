package sweeper_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/sweeper"
)

// BenchmarkSweep measures the rate at which one sweeper deletes or clears
// a backlog of 20,000 expired rows, per dialect, with default options
// (batches of 1000, a 10ms pause between them) and without the pause; the
// insertion of each backlog is not timed. It reports rows/s.
func BenchmarkSweep(b *testing.B) {
	const backlog = 20_000
	for _, kind := range testdb.Kinds {
		if only := os.Getenv(testdb.EnvOnly); only != "" && only != kind {
			continue
		}
		for _, p := range policies {
			for _, pause := range []time.Duration{0, -1} {
				name := kind + "/" + p.name + "/pause=default"
				if pause < 0 {
					name = kind + "/" + p.name + "/pause=none"
				}
				b.Run(name, func(b *testing.B) { benchmarkSweep(b, kind, p.opts, pause, backlog) })
			}
		}
	}
}

func benchmarkSweep(b *testing.B, kind string, opts sweeper.Options, pause time.Duration, backlog int) {
	tg := testdb.Get(b, kind)
	e := &env{tg: tg, tab: tg.CreateTable(b), db: tg.DB}
	opts.Pause = pause
	sw := e.newSweeper(b, tg.DB, opts)
	ctx := context.Background()
	var rows int64
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		base := time.Now().Add(-time.Minute)
		e.bulk(b, tg.DB, fmt.Sprintf("bench%d-", i), backlog, false, func(j int) time.Time {
			return base.Add(-time.Duration(j) * time.Millisecond)
		})
		b.StartTimer()
		start := time.Now()
		rep, err := sw.SweepOnce(ctx)
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Rows() != int64(backlog) {
			b.Fatalf("swept %d rows, want %d", rep.Rows(), backlog)
		}
		rows += rep.Rows()
	}
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
}
