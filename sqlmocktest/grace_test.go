package sqlmocktest

import (
	"context"
	"database/sql/driver"
	"errors"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/visitsession/visitsession/session"
)

// grace is the renewal grace window of these tests.
const grace = 5 * time.Second

// captured matches any []byte argument and records it.
type captured struct{ got *[]byte }

// Match accepts a non-empty []byte.
func (c captured) Match(v driver.Value) bool {
	b, ok := v.([]byte)
	if ok && c.got != nil {
		*c.got = append([]byte(nil), b...)
	}
	return ok && len(b) > 0
}

// TestRenewGraceForward pins a renewal with a grace window outside the
// Locked mode: one transaction holding the conditional UPDATE that moves
// the key and the INSERT of the forward row under the old key. A later
// load by the old token reads the forward and then the renewed row: two
// round trips, and the session takes the new token. A forward that cannot
// be written rolls the renewal back: the session keeps its token.
func TestRenewGraceForward(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		m.grace = true
		st := m.open(session.WithRenewGrace(grace))
		m.trips()
		tok, key := newToken()
		exp := m.enc(epoch.Add(idle))
		var renewed string
		var sealed []byte
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(1, map[string]any{"a": "1"})))
		m.mock.ExpectBegin()
		m.mock.ExpectExec(m.sql.Renew).WithArgs(keyArg{&renewed}, holds{"a": "1"}, exp, exp, key, int64(1), m.enc(epoch)).
			WillReturnResult(sqlmock.NewResult(0, 1))
		m.mock.ExpectExec(m.sql.Forward).WithArgs(key, captured{&sealed}, m.enc(epoch.Add(-time.Hour)), m.enc(epoch.Add(grace))).
			WillReturnResult(sqlmock.NewResult(0, 1))
		m.mock.ExpectCommit()
		s, _ := st.Load(ctx, tok)
		if err := st.Renew(ctx, s); err != nil {
			t.Fatal(err)
		}
		sameTrips(t, "Load and Renew", m.trips(), "query Load", "begin", "exec Renew", "exec Forward", "commit")
		fresh := s.Token()

		// The old token, within the window.
		forward := sqlmock.NewRows([]string{"session_data", "created", "expiry", "version"}).
			AddRow(sealed, m.enc(epoch.Add(-time.Hour)), m.enc(epoch.Add(grace)), int64(-1))
		m.expectLoad(key, epoch).WillReturnRows(forward)
		m.expectLoad(renewed, epoch).WillReturnRows(m.rows(live(2, map[string]any{"a": "1"})))
		s, err := st.Load(ctx, tok)
		if err != nil || s.Token() != fresh || s.GetString("a") != "1" {
			t.Fatalf("load by the old token: %v, moved to the new token %v", err, s.Token() == fresh)
		}
		sameTrips(t, "Load through the forward", m.trips(), "query Load", "query Load")

		// A forward that fails.
		tok, key = newToken()
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(1, nil)))
		m.mock.ExpectBegin()
		m.mock.ExpectExec(m.sql.Renew).WithArgs(keyArg{}, holds{}, exp, exp, key, int64(1), m.enc(epoch)).WillReturnResult(sqlmock.NewResult(0, 1))
		m.mock.ExpectExec(m.sql.Forward).WithArgs(key, captured{}, m.enc(epoch.Add(-time.Hour)), m.enc(epoch.Add(grace))).
			WillReturnError(m.permanent())
		m.mock.ExpectRollback()
		s, _ = st.Load(ctx, tok)
		if err := st.Renew(ctx, s); !errors.Is(err, m.permanent()) || s.Token() != tok {
			t.Fatalf("renewal whose forward failed: %v, token kept %v", err, s.Token() == tok)
		}
		sameTrips(t, "Renew with a failed forward", m.trips(), "query Load", "begin", "exec Renew", "exec Forward", "rollback")
		if got := st.Stats(); got.Renewals != 1 || got.Forwards != 1 {
			t.Fatalf("stats %+v", got)
		}
	})
}

// TestLockedRenewGraceForward renews a Locked session with a grace
// window: the forward row is written in the session's transaction, before
// the COMMIT.
func TestLockedRenewGraceForward(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		ctx := context.Background()
		m.grace = true
		st := m.openLocked(session.WithRenewGrace(grace))
		exp := m.enc(epoch.Add(idle))
		s, key := m.loadLocked(ctx, st)
		m.trips()
		m.mock.ExpectExec(m.sql.Renew).WithArgs(keyArg{}, holds{"n": 1}, exp, exp, key, int64(3), m.enc(epoch)).WillReturnResult(sqlmock.NewResult(0, 1))
		m.mock.ExpectExec(m.sql.Forward).WithArgs(key, captured{}, m.enc(epoch.Add(-time.Hour)), m.enc(epoch.Add(grace))).
			WillReturnResult(sqlmock.NewResult(0, 1))
		m.expectCommit(nil)
		if err := st.Renew(ctx, s); err != nil {
			t.Fatal(err)
		}
		sameTrips(t, "Renew", m.trips(), "exec Renew", "exec Forward", m.commitTrip())
	})
}
