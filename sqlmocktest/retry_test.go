package sqlmocktest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/session"
)

// retryLog records the OnRetry hook's calls.
type retryLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *retryLog) hook(op string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op)
}

func (l *retryLog) calls() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ops...)
}

// TestRetryableStatementIsRetried fails the merge UPDATE once with each
// retryable error of each database, among them the deadlock a Galera
// cluster reports when certification fails at the implicit COMMIT of a
// single autocommit statement: the same UPDATE runs again and succeeds.
func TestRetryableStatementIsRetried(t *testing.T) {
	cases := []struct {
		dialect string
		name    string
		err     func(t *testing.T) error
	}{
		{"mysql", "galera certification failure", func(*testing.T) error { return mysqlDeadlock }},
		{"mysql", "lock wait timeout", func(*testing.T) error { return mysqlLockWait }},
		{"postgres", "serialization failure", func(*testing.T) error { return pgSerialize }},
		{"postgres", "deadlock", func(*testing.T) error { return pgDeadlock }},
		{"postgres", "lock not available", func(*testing.T) error { return &pgconn.PgError{Code: "55P03"} }},
		{"sqlite", "busy", sqliteBusy},
	}
	for _, tc := range cases {
		t.Run(tc.dialect+"/"+tc.name, func(t *testing.T) {
			m := newMock(t, tc.dialect)
			var log retryLog
			st := m.open(session.WithHooks(session.Hooks{OnRetry: log.hook}))
			ctx := context.Background()
			tok, key := newToken()
			m.expectLoad(key, epoch).WillReturnRows(m.rows(live(1, nil)))
			m.expectUpdate(key, 1, map[string]any{"k": "v"}).WillReturnError(tc.err(t))
			m.expectUpdate(key, 1, map[string]any{"k": "v"}).WillReturnResult(sqlmock.NewResult(0, 1))
			s, _ := st.Load(ctx, tok)
			s.Set("k", "v")
			if err := st.Save(ctx, s); err != nil {
				t.Fatal(err)
			}
			if got := st.Stats(); got.Retries != 1 || got.Updates != 1 || got.Conflicts != 0 {
				t.Fatalf("stats %+v", got)
			}
			if got := log.calls(); len(got) != 1 || got[0] != "save" {
				t.Fatalf("OnRetry calls %v", got)
			}
		})
	}
}

// TestRetriesAreBounded fails every attempt with a retryable error: the
// statement runs 1+WithMaxRetries times, and the last driver error comes
// back wrapped once, classifiable, without the key or token.
func TestRetriesAreBounded(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		const retries = 3
		st := m.open(session.WithMaxRetries(retries))
		ctx := context.Background()
		tok, key := newToken()
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(1, nil)))
		retryable := m.retryable()
		for range retries + 1 {
			m.expectUpdate(key, 1, map[string]any{"k": "v"}).WillReturnError(retryable)
		}
		s, _ := st.Load(ctx, tok)
		s.Set("k", "v")
		err := st.Save(ctx, s)
		if err == nil || !errors.Is(err, retryable) || m.d.Classify(err) != dialect.Retryable {
			t.Fatalf("Save: %v, want the driver's retryable error", err)
		}
		if want := "session: save: " + retryable.Error(); err.Error() != want {
			t.Fatalf("error text %q, want %q", err, want)
		}
		noSecrets(t, err, tok, key)
		if got := st.Stats(); got.Retries != retries || got.Updates != 0 {
			t.Fatalf("stats %+v", got)
		}
	})
}

// TestOtherErrorsAreNotRetried fails the UPDATE with an error that is not
// retryable: one attempt, the error wrapped once with the operation.
func TestOtherErrorsAreNotRetried(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		st := m.open()
		ctx := context.Background()
		tok, key := newToken()
		permanent := m.permanent()
		m.expectLoad(key, epoch).WillReturnError(permanent)
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(1, nil)))
		m.expectUpdate(key, 1, map[string]any{"k": "v"}).WillReturnError(permanent)

		_, err := st.Load(ctx, tok)
		if !errors.Is(err, permanent) || err.Error() != "session: load: "+permanent.Error() {
			t.Fatalf("Load: %v", err)
		}
		s, _ := st.Load(ctx, tok)
		s.Set("k", "v")
		err = st.Save(ctx, s)
		if !errors.Is(err, permanent) || err.Error() != "session: save: "+permanent.Error() {
			t.Fatalf("Save: %v", err)
		}
		noSecrets(t, err, tok, key)
		if got := st.Stats(); got.Retries != 0 {
			t.Fatalf("stats %+v", got)
		}
		var my *mysql.MySQLError
		var pg *pgconn.PgError
		if m.name == "mysql" && !errors.As(err, &my) || m.name == "postgres" && !errors.As(err, &pg) {
			t.Fatalf("driver error type lost: %T", errors.Unwrap(err))
		}
	})
}

// TestRetriesStopAtDeadline fails every attempt with a retryable error
// under a context with a short deadline and a large retry budget: the
// retries stop at the deadline (a backoff that would outlast it is not
// started), and the last attempt's error comes back.
//
// The mock is given more failing attempts than can run, so the test
// counts attempts through Stats.Retries instead of requiring every
// expectation to be met.
func TestRetriesStopAtDeadline(t *testing.T) {
	m := newLooseMock(t, "postgres")
	st := m.open(session.WithMaxRetries(1000))
	tok, key := newToken()
	m.expectLoad(key, epoch).WillReturnRows(m.rows(live(1, nil)))
	for range 200 {
		m.expectUpdate(key, 1, map[string]any{"k": "v"}).WillReturnError(pgSerialize)
	}
	s, _ := st.Load(context.Background(), tok)
	s.Set("k", "v")
	const budget = 150 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	err := st.Save(ctx, s)
	elapsed := time.Since(start)
	// The last attempt's error: the serialization failure, or, when the
	// deadline passed while the statement ran, the cancellation.
	if !errors.Is(err, pgSerialize) && !errors.Is(err, sqlmock.ErrCancelled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Save: %v, want the serialization failure", err)
	}
	// Generous slack for a loaded machine: what matters is that no backoff
	// outlives the deadline by a whole step, and that the budget of 1000
	// retries was not used up.
	if elapsed > budget+500*time.Millisecond {
		t.Fatalf("Save took %v, long past its deadline of %v", elapsed, budget)
	}
	retries := st.Stats().Retries
	if retries < 2 || retries > 20 {
		t.Fatalf("%d retries in %v; want a few, with backoff", retries, elapsed)
	}
	t.Logf("%d retries in %v under a %v deadline", retries, elapsed, budget)
}

// TestLoadRetries retries a load that failed with a retryable error, and
// counts it under the "load" operation.
func TestLoadRetries(t *testing.T) {
	eachDialect(t, func(t *testing.T, m *mocked) {
		var log retryLog
		st := m.open(session.WithHooks(session.Hooks{OnRetry: log.hook}))
		tok, key := newToken()
		m.expectLoad(key, epoch).WillReturnError(m.retryable())
		m.expectLoad(key, epoch).WillReturnRows(m.rows(live(1, map[string]any{"a": "1"})))
		s, err := st.Load(context.Background(), tok)
		if err != nil || s.GetString("a") != "1" {
			t.Fatalf("Load: %v %v", s.Values(), err)
		}
		if got := strings.Join(log.calls(), ","); got != "load" {
			t.Fatalf("OnRetry calls %q", got)
		}
	})
}
