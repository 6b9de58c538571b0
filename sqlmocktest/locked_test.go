package sqlmocktest

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/visitsession/visitsession/session"
)

// The calls of the locked mode's transaction, as trips names them: a
// database/sql transaction, or statements on a dedicated connection
// ("sqlite-conn").
func (m *mocked) beginTrip() string {
	if lk := m.d.Lock(); lk.Begin != "" {
		return "exec " + lk.Begin
	}
	return "begin"
}

func (m *mocked) commitTrip() string {
	if lk := m.d.Lock(); lk.Commit != "" {
		return "exec " + lk.Commit
	}
	return "commit"
}

func (m *mocked) rollbackTrip() string {
	if lk := m.d.Lock(); lk.Rollback != "" {
		return "exec " + lk.Rollback
	}
	return "rollback"
}

func (m *mocked) lockedLoadTrip() string {
	if m.sql.LoadLocked == m.sql.Load {
		return "query Load"
	}
	return "query LoadLocked"
}

// lockTrips are the calls of a locked load that takes its lock: the
// begin, the dialect's TakeLock where the transaction has one, the
// locking load.
func (m *mocked) lockTrips() []string {
	trips := []string{m.beginTrip()}
	if m.d.Lock().Begin == "" && m.sql.TakeLock != "" {
		trips = append(trips, "exec TakeLock")
	}
	return append(trips, m.lockedLoadTrip())
}

// openLocked opens a Locked-mode store and forgets Open's calls.
func (m *mocked) openLocked(opts ...session.Option) *session.Store {
	m.t.Helper()
	st := m.open(append([]session.Option{session.WithMode(session.Locked)}, opts...)...)
	m.trips()
	return st
}

// loadLocked expects the locked load of a live row at version 3 holding
// {"n": 1}, runs it, and checks the session holds the lock.
func (m *mocked) loadLocked(ctx context.Context, st *session.Store) (*session.Session, string) {
	m.t.Helper()
	tok, key := newToken()
	m.expectBegin()
	m.expectLoadLocked(key, epoch).WillReturnRows(m.rows(live(3, map[string]any{"n": 1})))
	s, err := st.Load(ctx, tok)
	if err != nil || !s.Locked() || s.GetInt("n") != 1 {
		m.t.Fatalf("locked load: locked=%v values=%v err=%v", s.Locked(), s.Values(), err)
	}
	return s, key
}

// TestLockedSaveCommits pins the locked mode's request: BEGIN (and on
// SQLite the statement that takes the write lock; or a dialect's BEGIN
// IMMEDIATE), the locking load, the conditional UPDATE inside the
// transaction, COMMIT. Load is two round trips, Save two.
func TestLockedSaveCommits(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.openLocked()
		s, key := m.loadLocked(ctx, st)
		sameTrips(t, "Load", m.trips(), m.lockTrips()...)
		m.expectUpdate(key, 3, map[string]any{"n": 2}).WillReturnResult(sqlmock.NewResult(0, 1))
		m.expectCommit(nil)
		s.Set("n", s.GetInt("n")+1)
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		sameTrips(t, "Save", m.trips(), "exec Update", m.commitTrip())
		if s.Locked() || s.Changed() {
			t.Fatalf("after Save: locked=%v changed=%v", s.Locked(), s.Changed())
		}
		if got := st.Stats(); got.Updates != 1 || got.Loads != 1 || got.Retries != 0 {
			t.Fatalf("stats %+v", got)
		}
		// The lock is gone: a second save is an ordinary merge save.
		s.Set("n", 3)
		m.expectUpdate(key, 4, map[string]any{"n": 3}).WillReturnResult(sqlmock.NewResult(0, 1))
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		sameTrips(t, "second Save", m.trips(), "exec Update")
	})
}

// TestLockedUnchangedSave commits without writing when nothing changed and
// no touch is due, and touches inside the transaction when one is.
func TestLockedUnchangedSave(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.openLocked(session.WithTouchInterval(90 * time.Minute))
		s, _ := m.loadLocked(ctx, st)
		m.trips()
		m.expectCommit(nil)
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		sameTrips(t, "Save without changes", m.trips(), m.commitTrip())

		st2 := m.openLocked(session.WithTouchInterval(time.Minute))
		s, key := m.loadLocked(ctx, st2)
		m.trips()
		exp := m.enc(epoch.Add(idle))
		m.mock.ExpectExec(m.sql.Touch).WithArgs(exp, key, exp, m.enc(epoch)).WillReturnResult(sqlmock.NewResult(0, 1))
		m.expectCommit(nil)
		if err := st2.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		sameTrips(t, "Save with a touch due", m.trips(), "exec Touch", m.commitTrip())
	})
}

// TestLockedLoadMiss finds no live row: the transaction ends at once and
// the session is new and holds nothing.
func TestLockedLoadMiss(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		st := m.openLocked()
		tok, key := newToken()
		m.expectBegin()
		m.expectLoadLocked(key, epoch).WillReturnRows(noRows())
		m.expectRollback()
		s, err := st.Load(context.Background(), tok)
		if err != nil || !s.IsNew() || s.Locked() {
			t.Fatalf("miss: new=%v locked=%v err=%v", s.IsNew(), s.Locked(), err)
		}
		sameTrips(t, "Load of a missing session", m.trips(), append(m.lockTrips(), m.rollbackTrip())...)
	})
}

// TestLockedBeginFails fails the BEGIN: a permanent error comes back
// wrapped, with nothing to roll back; a retryable one (a busy BEGIN
// IMMEDIATE) is retried.
func TestLockedBeginFails(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		st := m.openLocked()
		tok, key := newToken()
		if lk := m.d.Lock(); lk.Begin != "" {
			m.mock.ExpectExec(lk.Begin).WillReturnError(m.permanent())
		} else {
			m.mock.ExpectBegin().WillReturnError(m.permanent())
		}
		_, err := st.Load(context.Background(), tok)
		if !errors.Is(err, m.permanent()) || !strings.HasPrefix(err.Error(), "session: load: ") {
			t.Fatalf("Load: %v", err)
		}
		noSecrets(t, err, tok, key)
		sameTrips(t, "failed BEGIN", m.trips(), m.beginTrip())

		if lk := m.d.Lock(); lk.Begin != "" {
			m.mock.ExpectExec(lk.Begin).WillReturnError(m.retryable())
		} else {
			m.mock.ExpectBegin().WillReturnError(m.retryable())
		}
		m.expectBegin()
		m.expectLoadLocked(key, epoch).WillReturnRows(m.rows(live(1, map[string]any{"a": 1})))
		m.expectRollback()
		s, err := st.Load(context.Background(), tok)
		if err != nil || !s.Locked() {
			t.Fatalf("Load after a retryable BEGIN failure: locked=%v %v", s.Locked(), err)
		}
		st.Release(context.Background(), s)
		sameTrips(t, "retried BEGIN", m.trips(), append(append([]string{m.beginTrip()}, m.lockTrips()...), m.rollbackTrip())...)
		if got := st.Stats().Retries; got != 1 {
			t.Fatalf("retries %d, want 1", got)
		}
	})
}

// TestLockedLoadFails fails the locking load in the ways it can fail: the
// transaction is rolled back each time, and only a retryable failure (a
// deadlock, a lock wait timeout) opens a new one.
func TestLockedLoadFails(t *testing.T) {
	cases := []struct {
		name  string
		rows  func(m *mocked) *sqlmock.Rows
		err   func(m *mocked) error
		retry bool
	}{
		{name: "query fails", err: func(m *mocked) error { return m.permanent() }},
		{name: "scan fails", rows: func(m *mocked) *sqlmock.Rows {
			return m.rows(live(1, nil)).RowError(0, m.permanent())
		}},
		{name: "created does not decode", rows: func(m *mocked) *sqlmock.Rows {
			return sqlmock.NewRows([]string{"session_data", "created", "expiry", "version"}).
				AddRow(nil, "not a time", m.enc(epoch.Add(time.Hour)), 1)
		}},
		{name: "deadlock", err: func(m *mocked) error { return m.retryable() }, retry: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eachDialect(t, func(t *testing.T, m *mocked) {
				st := m.openLocked()
				tok, key := newToken()
				m.expectBegin()
				q := m.expectLoadLocked(key, epoch)
				if tc.err != nil {
					q.WillReturnError(tc.err(m))
				} else {
					q.WillReturnRows(tc.rows(m))
				}
				m.expectRollback()
				want := append(m.lockTrips(), m.rollbackTrip())
				if tc.retry {
					m.expectBegin()
					m.expectLoadLocked(key, epoch).WillReturnRows(m.rows(live(1, map[string]any{"a": 1})))
					m.expectRollback()
					want = append(append(want, m.lockTrips()...), m.rollbackTrip())
				}
				s, err := st.Load(context.Background(), tok)
				if tc.retry {
					if err != nil || !s.Locked() {
						t.Fatalf("Load: locked=%v %v", s.Locked(), err)
					}
					st.Release(context.Background(), s)
				} else if err == nil || s.Locked() {
					t.Fatalf("Load: locked=%v err=%v, want an error", s.Locked(), err)
				}
				sameTrips(t, "Load", m.trips(), want...)
			})
		})
	}
}

// TestLockedSaveFails fails the save inside the transaction: the UPDATE
// fails (even with a retryable error, since the transaction is lost), finds
// no row, or the session is too large. Each rolls back, runs nothing more,
// and leaves the session's version alone.
func TestLockedSaveFails(t *testing.T) {
	cases := []struct {
		name   string
		expect func(m *mocked, key string)
		value  any
		want   func(m *mocked, err error) bool
		trips  []string
	}{
		{
			name: "retryable error",
			expect: func(m *mocked, key string) {
				m.expectUpdate(key, 3, map[string]any{"n": 2}).WillReturnError(m.retryable())
			},
			value: 2,
			want:  func(m *mocked, err error) bool { return errors.Is(err, m.retryable()) },
			trips: []string{"exec Update"},
		},
		{
			name: "row gone",
			expect: func(m *mocked, key string) {
				m.expectUpdate(key, 3, map[string]any{"n": 2}).WillReturnResult(sqlmock.NewResult(0, 0))
			},
			value: 2,
			want:  func(m *mocked, err error) bool { return errors.Is(err, session.ErrNotFound) },
			trips: []string{"exec Update"},
		},
		{
			name:   "too large",
			expect: func(*mocked, string) {},
			value:  strings.Repeat("x", 2000),
			want:   func(m *mocked, err error) bool { return errors.Is(err, session.ErrTooLarge) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eachDialect(t, func(t *testing.T, m *mocked) {
				ctx := context.Background()
				st := m.openLocked(session.WithMaxSize(1024))
				s, key := m.loadLocked(ctx, st)
				m.trips()
				tc.expect(m, key)
				m.expectRollback()
				s.Set("n", tc.value)
				err := st.Save(ctx, s)
				if !tc.want(m, err) || !strings.HasPrefix(err.Error(), "session: save: ") {
					t.Fatalf("Save: %v", err)
				}
				noSecrets(t, err, key)
				sameTrips(t, "failed Save", m.trips(), append(tc.trips, m.rollbackTrip())...)
				if s.Locked() || !s.Changed() {
					t.Fatalf("after a failed Save: locked=%v changed=%v", s.Locked(), s.Changed())
				}
				if got := st.Stats(); got.Updates != 0 || got.Retries != 0 {
					t.Fatalf("stats %+v", got)
				}
			})
		})
	}
}

// TestLockedCommitFails fails the COMMIT: Save reports it, the session
// keeps its changes and its version (nothing was written), and the next
// save writes them at that version. On SQLite a failed COMMIT is followed
// by a ROLLBACK, so that the connection returns to the pool with no
// transaction open.
func TestLockedCommitFails(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.openLocked()
		s, key := m.loadLocked(ctx, st)
		m.trips()
		m.expectUpdate(key, 3, map[string]any{"n": 2}).WillReturnResult(sqlmock.NewResult(0, 1))
		m.expectCommit(m.retryable())
		want := []string{"exec Update", m.commitTrip()}
		if m.d.Lock().Begin != "" {
			m.expectRollback()
			want = append(want, m.rollbackTrip())
		}
		s.Set("n", 2)
		err := st.Save(ctx, s)
		if !errors.Is(err, m.retryable()) {
			t.Fatalf("Save: %v, want the commit's error", err)
		}
		sameTrips(t, "Save with a failed COMMIT", m.trips(), want...)
		if s.Locked() || !s.Changed() {
			t.Fatalf("after a failed commit: locked=%v changed=%v", s.Locked(), s.Changed())
		}
		m.expectUpdate(key, 3, map[string]any{"n": 2}).WillReturnResult(sqlmock.NewResult(0, 1))
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		sameTrips(t, "next Save", m.trips(), "exec Update")
		if got := st.Stats(); got.Updates != 1 {
			t.Fatalf("stats %+v", got)
		}
	})
}

// TestLockedConnectionDiscarded fails both the COMMIT and the ROLLBACK
// after it on a dedicated connection: the connection, whose transaction
// state is unknown, is closed instead of going back to the pool.
func TestLockedConnectionDiscarded(t *testing.T) {
	m := newMock(t, "sqlite-conn")
	ctx := context.Background()
	st := m.openLocked()
	s, key := m.loadLocked(ctx, st)
	m.trips()
	m.expectUpdate(key, 3, map[string]any{"n": 2}).WillReturnResult(sqlmock.NewResult(0, 1))
	lk := m.d.Lock()
	m.mock.ExpectExec(lk.Commit).WillReturnError(errors.New("disk I/O error (10)"))
	m.mock.ExpectExec(lk.Rollback).WillReturnError(errors.New("disk I/O error (10)"))
	s.Set("n", 2)
	if err := st.Save(ctx, s); err == nil {
		t.Fatal("Save succeeded")
	}
	sameTrips(t, "Save", m.trips(), "exec Update", "exec COMMIT", "exec ROLLBACK", "close")
}

// TestLockedContextEnds cancels the context of the load while the session
// holds its lock and the request does nothing more: the transaction is
// rolled back and the connection given back, by database/sql for a
// *sql.Tx and by the store for SQLite's dedicated connection. A later Save
// sends nothing and fails with an error wrapping sql.ErrTxDone.
func TestLockedContextEnds(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx, cancel := context.WithCancel(context.Background())
		st := m.openLocked()
		s, _ := m.loadLocked(ctx, st)
		m.trips()
		m.expectRollback()
		cancel()
		m.waitTrip(t, m.rollbackTrip())
		s.Set("n", 2)
		err := st.Save(context.Background(), s)
		if !errors.Is(err, sql.ErrTxDone) {
			t.Fatalf("Save after the load's context ended: %v, want sql.ErrTxDone", err)
		}
		got := m.trips()
		// database/sql discards the connection of a transaction its
		// context ended.
		if len(got) > 0 && got[len(got)-1] == "close" {
			got = got[:len(got)-1]
		}
		sameTrips(t, "cancelled locked session", got, m.rollbackTrip())
	})
}

// TestLockedContextEndsDuringSave cancels the context while the UPDATE
// runs: the transaction is rolled back once, and Save reports the failure.
// (The dialects that prepare their statements are left out: the mock does
// not interrupt a prepared statement.)
func TestLockedContextEndsDuringSave(t *testing.T) {
	for _, name := range []string{"postgres", "sqlite-conn"} {
		t.Run(name, func(t *testing.T) {
			m := newMock(t, name)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			st := m.openLocked()
			s, key := m.loadLocked(ctx, st)
			m.trips()
			m.expectUpdate(key, 3, map[string]any{"n": 2}).WillDelayFor(time.Minute).WillReturnResult(sqlmock.NewResult(0, 1))
			m.expectRollback()
			m.rec.hooks(func(call string) {
				if call == "exec "+m.sql.Update {
					time.AfterFunc(20*time.Millisecond, cancel)
				}
			}, nil)
			s.Set("n", 2)
			if err := st.Save(ctx, s); err == nil {
				t.Fatal("Save succeeded")
			}
			m.waitTrip(t, m.rollbackTrip())
			got := m.trips()
			if len(got) > 0 && got[len(got)-1] == "close" {
				got = got[:len(got)-1]
			}
			sameTrips(t, "cancelled Save", got, "exec Update", m.rollbackTrip())
		})
	}
}

// TestLockedRelease rolls back on Release, once.
func TestLockedRelease(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.openLocked()
		s, _ := m.loadLocked(ctx, st)
		m.trips()
		m.expectRollback()
		st.Release(ctx, s)
		st.Release(ctx, s)
		sameTrips(t, "Release", m.trips(), m.rollbackTrip())
		if s.Locked() {
			t.Fatal("still locked after Release")
		}
	})
}

// TestLockedStoreClosed closes the store while a session holds its lock:
// Save gives ErrClosed and still rolls the transaction back.
func TestLockedStoreClosed(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.openLocked()
		s, _ := m.loadLocked(ctx, st)
		m.trips()
		m.expectRollback()
		st.Close()
		s.Set("n", 2)
		if err := st.Save(ctx, s); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("Save: %v", err)
		}
		sameTrips(t, "Save on a closed store", m.trips(), m.rollbackTrip())
	})
}

// TestLockedRenew renews inside the transaction: one UPDATE of the key at
// the loaded version, then COMMIT. When the UPDATE finds no row the
// transaction rolls back and Renew reports ErrNotFound; when the COMMIT
// fails the session keeps its old token.
func TestLockedRenew(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.openLocked()
		exp := m.enc(epoch.Add(idle))

		s, key := m.loadLocked(ctx, st)
		m.trips()
		old := s.Token()
		var renewed string
		m.mock.ExpectExec(m.sql.Renew).WithArgs(keyArg{&renewed}, holds{"n": 1}, exp, exp, key, int64(3), m.enc(epoch)).WillReturnResult(sqlmock.NewResult(0, 1))
		m.expectCommit(nil)
		if err := st.Renew(ctx, s); err != nil {
			t.Fatal(err)
		}
		sameTrips(t, "Renew", m.trips(), "exec Renew", m.commitTrip())
		if s.Token() == old || s.Locked() || renewed == key {
			t.Fatalf("after Renew: same token=%v locked=%v", s.Token() == old, s.Locked())
		}

		s, key = m.loadLocked(ctx, st)
		m.trips()
		m.mock.ExpectExec(m.sql.Renew).WithArgs(keyArg{}, holds{"n": 1}, exp, exp, key, int64(3), m.enc(epoch)).WillReturnResult(sqlmock.NewResult(0, 0))
		m.expectRollback()
		if err := st.Renew(ctx, s); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Renew of a gone row: %v", err)
		}
		sameTrips(t, "Renew of a gone row", m.trips(), "exec Renew", m.rollbackTrip())

		s, key = m.loadLocked(ctx, st)
		m.trips()
		old = s.Token()
		m.mock.ExpectExec(m.sql.Renew).WithArgs(keyArg{}, holds{"n": 1}, exp, exp, key, int64(3), m.enc(epoch)).WillReturnResult(sqlmock.NewResult(0, 1))
		m.expectCommit(m.permanent())
		want := []string{"exec Renew", m.commitTrip()}
		if m.d.Lock().Begin != "" {
			m.expectRollback()
			want = append(want, m.rollbackTrip())
		}
		if err := st.Renew(ctx, s); !errors.Is(err, m.permanent()) {
			t.Fatalf("Renew with a failed commit: %v", err)
		}
		sameTrips(t, "Renew with a failed commit", m.trips(), want...)
		if s.Token() != old {
			t.Fatal("the session took the new token although the commit failed")
		}
		if got := st.Stats().Renewals; got != 1 {
			t.Fatalf("renewals %d, want 1", got)
		}
	})
}

// TestLockedDestroy ends the session inside the transaction and commits;
// with WithDeleteRows it deletes the row.
func TestLockedDestroy(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		st := m.openLocked()
		s, key := m.loadLocked(ctx, st)
		m.trips()
		m.mock.ExpectExec(m.sql.End).WithArgs(m.enc(epoch.Add(-time.Minute)), key, m.enc(epoch)).WillReturnResult(sqlmock.NewResult(0, 1))
		m.expectCommit(nil)
		if err := st.Destroy(ctx, s); err != nil {
			t.Fatal(err)
		}
		sameTrips(t, "Destroy", m.trips(), "exec End", m.commitTrip())

		del := m.openLocked(session.WithDeleteRows(true))
		s, key = m.loadLocked(ctx, del)
		m.trips()
		m.mock.ExpectExec(m.sql.Delete).WithArgs(key).WillReturnError(m.permanent())
		m.expectRollback()
		if err := del.Destroy(ctx, s); !errors.Is(err, m.permanent()) || s.Locked() {
			t.Fatalf("failed Destroy: locked=%v %v", s.Locked(), err)
		}
		sameTrips(t, "failed Destroy", m.trips(), "exec Delete", m.rollbackTrip())
		if got := del.Stats().Destroys; got != 0 {
			t.Fatalf("destroys %d after a failed Destroy", got)
		}
	})
}

// TestLockedLoadExpiredDuringWait answers the locking load with a row
// that was live when the load read its clock but has expired by the time
// the lock is granted: the store checks the row against the clock again,
// rolls back and gives a new session.
func TestLockedLoadExpiredDuringWait(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		st := m.openLocked()
		tok, key := newToken()
		m.expectBegin()
		expired := stored{created: epoch.Add(-time.Hour), expiry: epoch, version: 3, values: map[string]any{"n": 1}}
		m.expectLoadLocked(key, epoch).WillReturnRows(m.rows(expired))
		m.expectRollback()
		s, err := st.Load(context.Background(), tok)
		if err != nil || !s.IsNew() || s.Locked() {
			t.Fatalf("load: new=%v locked=%v %v", s.IsNew(), s.Locked(), err)
		}
		sameTrips(t, "Load", m.trips(), append(m.lockTrips(), m.rollbackTrip())...)
	})
}

// TestLockedTakeLockFails fails the statement that takes SQLite's write
// lock in the locked mode's transaction: a busy database is retried in a
// new transaction, the failed one rolled back; another error comes back
// wrapped, its transaction rolled back too.
func TestLockedTakeLockFails(t *testing.T) {
	m := newMock(t, "sqlite")
	ctx := context.Background()
	st := m.openLocked()
	tok, key := newToken()
	m.mock.ExpectBegin()
	m.mock.ExpectExec(m.sql.TakeLock).WithoutArgs().WillReturnError(m.retryable())
	m.mock.ExpectRollback()
	m.expectBegin()
	m.expectLoadLocked(key, epoch).WillReturnRows(m.rows(live(1, map[string]any{"a": 1})))
	m.expectRollback()
	s, err := st.Load(ctx, tok)
	if err != nil || !s.Locked() {
		t.Fatalf("Load after a busy TakeLock: locked=%v %v", s.Locked(), err)
	}
	st.Release(ctx, s)
	sameTrips(t, "retried TakeLock", m.trips(), "begin", "exec TakeLock", "rollback", "begin", "exec TakeLock", "query Load", "rollback")
	if got := st.Stats().Retries; got != 1 {
		t.Fatalf("retries %d, want 1", got)
	}

	m.mock.ExpectBegin()
	m.mock.ExpectExec(m.sql.TakeLock).WithoutArgs().WillReturnError(m.permanent())
	m.mock.ExpectRollback()
	if _, err := st.Load(ctx, tok); !errors.Is(err, m.permanent()) || !strings.HasPrefix(err.Error(), "session: load: ") {
		t.Fatalf("Load with a failing TakeLock: %v", err)
	}
	sameTrips(t, "failed TakeLock", m.trips(), "begin", "exec TakeLock", "rollback")
}
