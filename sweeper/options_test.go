package sweeper_test

import (
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/sweeper"
	"github.com/visitsession/visitsession/visit"
)

func TestNewRejectsInvalidOptions(t *testing.T) {
	db, err := sql.Open("sqlite", "file:unused.db?mode=memory")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tests := []struct {
		name string
		opts sweeper.Options
		want string // in the error
	}{
		{"negative retention", sweeper.Options{DeleteAfter: -time.Hour}, "DeleteAfter -1h0m0s is negative"},
		{"nothing to do", sweeper.Options{DeleteAfter: sweeper.Never}, "nothing to sweep"},
		{"clear then delete at once", sweeper.Options{ClearData: true}, "ClearData with DeleteAfter 0"},
		{"negative batch", sweeper.Options{BatchSize: -1}, "BatchSize -1 is outside"},
		{"huge batch", sweeper.Options{BatchSize: sweeper.MaxBatchSize + 1}, "BatchSize 100001 is outside"},
		{"negative interval", sweeper.Options{Interval: -time.Second}, "Interval -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw, err := sweeper.New(db, dialect.SQLite(), visit.Default(), tt.opts)
			if !errors.Is(err, sweeper.ErrInvalidOptions) || !strings.Contains(err.Error(), tt.want) || sw != nil {
				t.Errorf("New: %v; want ErrInvalidOptions mentioning %q", err, tt.want)
			}
		})
	}
	t.Run("nil db", func(t *testing.T) {
		if _, err := sweeper.New(nil, dialect.SQLite(), visit.Default(), sweeper.Options{}); !errors.Is(err, sweeper.ErrInvalidOptions) {
			t.Errorf("New: %v", err)
		}
	})
	t.Run("nil dialect", func(t *testing.T) {
		if _, err := sweeper.New(db, nil, visit.Default(), sweeper.Options{}); !errors.Is(err, sweeper.ErrInvalidOptions) {
			t.Errorf("New: %v", err)
		}
	})
	t.Run("bad table name", func(t *testing.T) {
		if _, err := sweeper.New(db, dialect.SQLite(), visit.Default().WithName("visit; DROP"), sweeper.Options{}); !errors.Is(err, visit.ErrInvalidName) {
			t.Errorf("New: %v", err)
		}
	})
	for _, opts := range []sweeper.Options{
		{},
		{ClearData: true, DeleteAfter: sweeper.Never},
		{ClearData: true, DeleteAfter: 90 * 24 * time.Hour},
		{BatchSize: 1, Pause: -1, Jitter: -1, MaxRetries: -1, BatchTimeout: -1, LeaseTTL: -1},
		{BatchSize: sweeper.MaxBatchSize, Interval: time.Millisecond},
	} {
		if _, err := sweeper.New(db, dialect.SQLite(), visit.Default(), opts); err != nil {
			t.Errorf("New(%+v): %v", opts, err)
		}
	}
}
