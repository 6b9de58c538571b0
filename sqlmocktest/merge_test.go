package sqlmocktest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// TestMergeSaveIsOneStatement pins the round trips of an uncontended
// session: Load is one query, and a merge-mode Save of a change is one
// conditional UPDATE, with no transaction.
func TestMergeSaveIsOneStatement(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.open()
		tok, key := newToken()
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(3, map[string]any{"a": "1"})))
		m.expectUpdate(key, 3, map[string]any{"a": "1", "b": "2"}).WillReturnResult(sqlmock.NewResult(0, 1))

		s, err := st.Load(ctx, tok)
		if err != nil || s.IsNew() {
			t.Fatalf("Load: new=%v %v", s.IsNew(), err)
		}
		s.Set("b", "2")
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		if got := st.Stats(); got.Loads != 1 || got.Updates != 1 || got.Conflicts != 0 || got.Retries != 0 {
			t.Fatalf("stats %+v", got)
		}
	})
}

// TestMergeConflictReloadsAndReapplies loses the conditional UPDATE once
// (0 rows affected): the store reloads, re-applies only its own change on
// the fresh values and version, and updates again.
func TestMergeConflictReloadsAndReapplies(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		var attempts []int
		st := m.open(session.WithHooks(session.Hooks{OnConflict: func(a int) { attempts = append(attempts, a) }}))
		tok, key := newToken()
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(3, map[string]any{"a": "1", "gone": true})))
		m.expectUpdate(key, 3, map[string]any{"a": "1", "mine": "x"}).WillReturnResult(sqlmock.NewResult(0, 0))
		// Another request set "theirs" and deleted "a" meanwhile.
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(4, map[string]any{"theirs": "y", "gone": true})))
		m.expectUpdate(key, 4, map[string]any{"theirs": "y", "mine": "x"}).WillReturnResult(sqlmock.NewResult(0, 1))

		s, err := st.Load(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		s.Set("mine", "x")
		s.Delete("gone")
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		if s.GetString("theirs") != "y" || s.Has("a") || s.Has("gone") || s.GetString("mine") != "x" {
			t.Fatalf("values after merge: %v", s.Values())
		}
		if got := st.Stats(); got.Conflicts != 1 || got.ConflictFailures != 0 || got.Updates != 1 || got.Loads != 2 {
			t.Fatalf("stats %+v", got)
		}
		if len(attempts) != 1 || attempts[0] != 1 {
			t.Fatalf("OnConflict calls %v, want [1]", attempts)
		}
		// The session is at version 5 now: the next save is one UPDATE.
		s.Set("again", 1)
		m.expectUpdate(key, 5, map[string]any{"theirs": "y", "mine": "x", "again": 1}).WillReturnResult(sqlmock.NewResult(0, 1))
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
	})
}

// TestMergeConflictSessionGone loses the UPDATE and finds the row gone on
// reload (destroyed, renewed or expired elsewhere): ErrNotFound, and no
// further statement.
func TestMergeConflictSessionGone(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.open()
		tok, key := newToken()
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(1, map[string]any{"a": "1"})))
		m.expectUpdate(key, 1, map[string]any{"a": "2"}).WillReturnResult(sqlmock.NewResult(0, 0))
		m.expectLoad(key, epoch).WillReturnRows(noRows())

		s, _ := st.Load(ctx, tok)
		s.Set("a", "2")
		err := st.Save(ctx, s)
		if !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Save: %v, want ErrNotFound", err)
		}
		noSecrets(t, err, tok, key)
		if got := st.Stats(); got.Conflicts != 0 || got.Updates != 0 || got.Misses != 1 {
			t.Fatalf("stats %+v", got)
		}
	})
}

// TestMergeConflictGivesUp loses every attempt: after WithMaxAttempts
// attempts the save gives ErrConflict, counted in Conflicts and
// ConflictFailures.
func TestMergeConflictGivesUp(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.open(session.WithMaxAttempts(3))
		tok, key := newToken()
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(1, nil)))
		for v := int64(1); v <= 3; v++ {
			m.expectUpdate(key, v, map[string]any{"k": "v"}).WillReturnResult(sqlmock.NewResult(0, 0))
			m.expectLoad(key, epoch).WillReturnRows(m.rows(live(v+1, nil)))
		}
		s, _ := st.Load(ctx, tok)
		s.Set("k", "v")
		err := st.Save(ctx, s)
		if !errors.Is(err, session.ErrConflict) {
			t.Fatalf("Save: %v, want ErrConflict", err)
		}
		if got := st.Stats(); got.Conflicts != 3 || got.ConflictFailures != 1 || got.Updates != 0 {
			t.Fatalf("stats %+v", got)
		}
	})
}

// TestMergeConflictRespectsDeadline loses the UPDATE with a context that
// ends during the reload: the save stops there with the cancelled
// reload's error, sending nothing more. PostgreSQL's dialect runs
// unprepared statements, which the mock interrupts on cancellation.
func TestMergeConflictRespectsDeadline(t *testing.T) {
	m := newMock(t, "postgres")
	st := m.open()
	tok, key := newToken()
	m.expectLoad(key, epoch).WillReturnRows(m.rows(live(1, nil)))
	m.expectUpdate(key, 1, map[string]any{"k": "v"}).WillReturnResult(sqlmock.NewResult(0, 0))
	m.expectLoad(key, epoch).WillDelayFor(time.Minute).WillReturnRows(m.rows(live(2, nil)))

	s, _ := st.Load(context.Background(), tok)
	s.Set("k", "v")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloads := 0
	m.rec.hooks(func(call string) {
		if call == "query "+m.sql.Load {
			if reloads++; reloads == 1 {
				time.AfterFunc(20*time.Millisecond, cancel)
			}
		}
	}, nil)
	start := time.Now()
	err := st.Save(ctx, s)
	if err == nil || !errors.Is(err, sqlmock.ErrCancelled) {
		t.Fatalf("Save: %v, want the cancelled reload", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Save returned after %v", d)
	}
}

// TestLastWriteWinsIsOneStatement pins the last-write-wins save: one
// UPDATE without the version, whose 0 rows affected means the session is
// gone.
func TestLastWriteWinsIsOneStatement(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.open(session.WithMode(session.LastWriteWins))
		tok, key := newToken()
		exp := m.enc(epoch.Add(idle))
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(7, map[string]any{"a": "1"})))
		m.mock.ExpectExec(m.sql.UpdateAny).WithArgs(holds{"a": "1", "b": "2"}, exp, exp, key, m.enc(epoch)).WillReturnResult(sqlmock.NewResult(0, 1))
		m.mock.ExpectExec(m.sql.UpdateAny).WithArgs(holds{"a": "1", "b": "3"}, exp, exp, key, m.enc(epoch)).WillReturnResult(sqlmock.NewResult(0, 0))

		s, _ := st.Load(ctx, tok)
		s.Set("b", "2")
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		s.Set("b", "3")
		if err := st.Save(ctx, s); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("second Save: %v, want ErrNotFound", err)
		}
	})
}

// TestInsertIsOneStatement pins the first save of a new session: one
// INSERT under a fresh key, at version 1; a duplicate key (which only a
// broken random source produces) is retried under another key.
func TestInsertIsOneStatement(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.open()
		var first, second string
		exp := m.enc(epoch.Add(idle))
		m.mock.ExpectExec(m.sql.Insert).WithArgs(keyArg{&first}, holds{"a": "1"}, m.enc(epoch), exp).WillReturnResult(sqlmock.NewResult(0, 1))
		s := st.New()
		s.Set("a", "1")
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		if s.IsNew() || first == "" {
			t.Fatalf("after insert: new=%v key=%q", s.IsNew(), first)
		}

		dup := map[string]error{"postgres": pgDuplicate, "mysql": mysqlDuplicate, "sqlite": sqliteDuplicate(t)}[m.d.Name()]
		m.mock.ExpectExec(m.sql.Insert).WithArgs(keyArg{}, holds{"b": "1"}, m.enc(epoch), exp).WillReturnError(dup)
		m.mock.ExpectExec(m.sql.Insert).WithArgs(keyArg{&second}, holds{"b": "1"}, m.enc(epoch), exp).WillReturnResult(sqlmock.NewResult(0, 1))
		s2 := st.New()
		s2.Set("b", "1")
		if err := st.Save(ctx, s2); err != nil {
			t.Fatal(err)
		}
		if got := st.Stats(); got.Inserts != 2 || got.KeyCollisions != 1 {
			t.Fatalf("stats %+v", got)
		}
	})
}

// TestUnchangedSessionTouches pins a save without changes: nothing within
// the touch interval, one expiry-only UPDATE after it.
func TestUnchangedSessionTouches(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.open(session.WithTouchInterval(10 * time.Minute))
		tok, key := newToken()
		fresh := stored{created: epoch.Add(-time.Minute), expiry: epoch.Add(idle - 5*time.Minute), version: 2, values: map[string]any{"a": "1"}}
		m.expectLoad(key, epoch).WillReturnRows(m.rows(fresh))
		s, _ := st.Load(ctx, tok)
		if err := st.Save(ctx, s); err != nil { // expiry would move 5 minutes: no statement
			t.Fatal(err)
		}
		old := live(2, map[string]any{"a": "1"})
		m.expectLoad(key, epoch).WillReturnRows(m.rows(old))
		exp := m.enc(epoch.Add(idle))
		m.mock.ExpectExec(m.sql.Touch).WithArgs(exp, key, exp, m.enc(epoch)).WillReturnResult(sqlmock.NewResult(0, 1))
		s, _ = st.Load(ctx, tok)
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		if got := st.Stats(); got.Touches != 1 || got.Updates != 0 {
			t.Fatalf("stats %+v", got)
		}
	})
}

// TestDestroyEndsWithMargin pins Destroy: one UPDATE that clears the data
// and sets the expiry a minute before now (or to the creation instant when
// that is later), so that no request whose clock lags by less can find the
// row live again; or one DELETE with WithDeleteRows.
func TestDestroyEndsWithMargin(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.open()
		tok, key := newToken()
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(2, map[string]any{"a": "1"})))
		m.mock.ExpectExec(m.sql.End).WithArgs(m.enc(epoch.Add(-time.Minute)), key, m.enc(epoch)).WillReturnResult(sqlmock.NewResult(0, 1))
		s, _ := st.Load(ctx, tok)
		if err := st.Destroy(ctx, s); err != nil {
			t.Fatal(err)
		}
		if !s.IsNew() || !s.Destroyed() || s.Token() != "" {
			t.Fatalf("after Destroy: new=%v destroyed=%v", s.IsNew(), s.Destroyed())
		}

		young := stored{created: epoch.Add(-10 * time.Second), expiry: epoch.Add(time.Hour), version: 1, values: map[string]any{"a": "1"}}
		m.expectLoad(key, epoch).WillReturnRows(m.rows(young))
		m.mock.ExpectExec(m.sql.End).WithArgs(m.enc(young.created), key, m.enc(epoch)).WillReturnResult(sqlmock.NewResult(0, 1))
		s, _ = st.Load(ctx, tok)
		if err := st.Destroy(ctx, s); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRenewConflictReloads loses the conditional renewal once: the store
// reloads, re-applies its pending change and renews at the fresh version,
// under a new key each time.
func TestRenewConflictReloads(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.open()
		m.trips()
		tok, key := newToken()
		exp := m.enc(epoch.Add(idle))
		var first, second string
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(1, map[string]any{"a": "1"})))
		m.mock.ExpectExec(m.sql.Renew).WithArgs(keyArg{&first}, holds{"a": "1", "user": "u"}, exp, exp, key, int64(1), m.enc(epoch)).
			WillReturnResult(sqlmock.NewResult(0, 0))
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(2, map[string]any{"a": "1", "b": "2"})))
		m.mock.ExpectExec(m.sql.Renew).WithArgs(keyArg{&second}, holds{"a": "1", "b": "2", "user": "u"}, exp, exp, key, int64(2), m.enc(epoch)).
			WillReturnResult(sqlmock.NewResult(0, 1))

		s, _ := st.Load(ctx, tok)
		s.Set("user", "u")
		if err := st.Renew(ctx, s); err != nil {
			t.Fatal(err)
		}
		if s.Token() == tok || first == second || visit.HashToken(s.Token()) != second {
			t.Fatal("the session does not hold the key of the renewal that succeeded")
		}
		if got := st.Stats(); got.Renewals != 1 || got.Conflicts != 1 {
			t.Fatalf("stats %+v", got)
		}
		sameTrips(t, "Load and Renew", m.trips(), "query Load", "exec Renew", "query Load", "exec Renew")
	})
}

// TestMergeBackoffWithinDeadline loses every conditional UPDATE, each
// taking a while, under a context with a deadline and a large attempt
// budget: the waits between attempts, which grow with each loss, stay
// within the deadline, and the save ends with the context's deadline
// rather than after the budget.
func TestMergeBackoffWithinDeadline(t *testing.T) {
	m := newLooseMock(t, "postgres")
	st := m.open(session.WithMaxAttempts(1000))
	tok, key := newToken()
	m.expectLoad(key, epoch).WillReturnRows(m.rows(live(1, nil)))
	for v := int64(1); v <= 200; v++ {
		m.expectUpdate(key, v, map[string]any{"k": "v"}).WillDelayFor(5 * time.Millisecond).WillReturnResult(sqlmock.NewResult(0, 0))
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(v+1, nil)))
	}
	s, _ := st.Load(context.Background(), tok)
	s.Set("k", "v")
	const budget = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	err := st.Save(ctx, s)
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, sqlmock.ErrCancelled) {
		t.Fatalf("Save: %v, want the deadline", err)
	}
	conflicts := st.Stats().Conflicts
	if conflicts < 3 || elapsed > budget+500*time.Millisecond {
		t.Fatalf("%d conflicts in %v under a %v deadline", conflicts, elapsed, budget)
	}
	t.Logf("%d conflicts in %v under a %v deadline", conflicts, elapsed, budget)
}
