package sweeper_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	sq "github.com/Masterminds/squirrel"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/sweeper"
	"github.com/visitsession/visitsession/visit"
)

func TestLeaseKeyCannotBeASessionKey(t *testing.T) {
	if len(sweeper.LeaseKey) != visit.KeyLength {
		t.Errorf("LeaseKey has %d characters, want %d", len(sweeper.LeaseKey), visit.KeyLength)
	}
	if _, err := visit.ParseToken(sweeper.LeaseKey); err == nil {
		t.Error("ParseToken accepts LeaseKey")
	}
	if strings.Trim(sweeper.LeaseKey, "0123456789abcdef") == "" {
		t.Error("LeaseKey is lowercase hex, the form of hashed keys")
	}
	for _, m := range []visit.KeyMode{visit.KeyHashed, visit.KeyPlain} {
		if k := m.StoredKey(visit.NewToken()); strings.ContainsAny(k, "~.") {
			t.Errorf("%v key %q uses a character of LeaseKey's", m, k)
		}
	}
}

func TestLeaseHeldElsewhere(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newEnv(t, tg)
		e.bulk(t, e.db, "old", 10, false, func(int) time.Time { return now.Add(-time.Minute) })
		e.insert(t, sweeper.LeaseKey, []byte("other-host/1/abc"), now.Add(time.Hour))
		rec := newHookRecorder()
		rep, err := e.newSweeper(t, e.db, sweeper.Options{Clock: fixedClock, Hook: rec.hook}).SweepOnce(context.Background())
		if err != nil || !rep.Skipped || rep.Holder != "other-host/1/abc" || !rep.HeldUntil.Equal(now.Add(time.Hour)) || rep.Rows() != 0 {
			t.Errorf("got %+v, %v; want skipped, held by other-host/1/abc for an hour", rep, err)
		}
		if got := rec.all(); len(got) != 1 || !got[0].Skipped {
			t.Errorf("hook got %+v", got)
		}
		if !strings.HasPrefix(rep.String(), `skipped: lease held by "other-host/1/abc" until `) {
			t.Errorf("String() = %q", rep.String())
		}
		if n := e.count(t, ""); n != 10 {
			t.Errorf("%d rows left, want 10", n)
		}
	})
}

func TestLeaseTakenOverWhenEnded(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newEnv(t, tg)
		e.bulk(t, e.db, "old", 10, false, func(int) time.Time { return now.Add(-time.Minute) })
		e.insert(t, sweeper.LeaseKey, []byte("crashed/1/abc"), now.Add(-time.Second))
		sw := e.newSweeper(t, e.db, sweeper.Options{Clock: fixedClock})
		rep, err := sw.SweepOnce(context.Background())
		if err != nil || rep.Skipped || rep.Deleted != 10 {
			t.Errorf("got %v, %v; want 10 deleted", rep, err)
		}
		// Taken (version 2), released (version 3).
		if l := e.get(t, sweeper.LeaseKey); string(l.data) != sw.Owner() || !l.expiry.Equal(now) || l.version != 3 {
			t.Errorf("lease row %+v; want held by %s, ended now, version 3", l, sw.Owner())
		}
	})
}

// TestLeaseLost lets another instance take the lease over in the middle
// of a run, as if this one had stalled past LeaseTTL: the run must stop
// with ErrLeaseLost and leave the new holder's lease alone. The clock
// moves a minute per call, so that every batch renews the lease, and the
// takeover happens inside the call before the fourth batch.
func TestLeaseLost(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		e := newEnv(t, tg)
		e.bulk(t, e.db, "old", 100, false, func(i int) time.Time { return now.Add(-time.Duration(i+1) * time.Second) })
		n := func(s string) string { return tg.Dialect.Quote(s) }
		until := now.Add(time.Hour)
		steal, args, err := sq.Update(n(e.tab.Name)).Set(n(e.tab.Data), []byte("thief")).Set(n(e.tab.Expiry), e.enc(until)).
			Where(n(e.tab.Key)+" = ?", sweeper.LeaseKey).PlaceholderFormat(tg.Dialect.Placeholder()).ToSql()
		if err != nil {
			t.Fatal(err)
		}
		// Calls: two at the start of the run, then one per batch.
		var calls int
		clock := func() time.Time {
			calls++
			if calls == 6 {
				if _, err := e.db.ExecContext(context.Background(), steal, args...); err != nil {
					t.Error(err)
				}
			}
			return now.Add(time.Duration(calls) * time.Minute)
		}
		sw := e.newSweeper(t, e.db, sweeper.Options{BatchSize: 5, Pause: -1, Clock: clock})
		rep, err := sw.SweepOnce(context.Background())
		if !errors.Is(err, sweeper.ErrLeaseLost) || rep.Deleted != 15 || rep.Batches != 3 {
			t.Errorf("got %v, %v; want 15 rows in 3 batches, then ErrLeaseLost", rep, err)
		}
		if l := e.get(t, sweeper.LeaseKey); string(l.data) != "thief" || !l.expiry.Equal(until) {
			t.Errorf("lease row %+v; want the thief's lease untouched", l)
		}
	})
}
