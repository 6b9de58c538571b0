package session_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// tenKeys is a typical session: a user id, a name, roles, a login time, a
// few flags and strings.
func tenKeys(s *session.Session) {
	s.Set("user_id", int64(1234567))
	s.Set("name", "Ada Lovelace")
	s.Set("roles", []string{"admin", "editor", "viewer"})
	s.Set("login_at", time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	s.Set("mfa", true)
	s.Set("score", 98.6)
	s.Set("lang", "en-GB")
	s.Set("theme", "dark")
	s.Set("csrf", "k2Jd9sL0qPzX8vB3nM5tY7wQ1eR4uI6o")
	s.Set("cart_items", 3)
}

// benchTargets runs f per dialect.
func benchTargets(b *testing.B, f func(b *testing.B, tg *testdb.Target)) {
	for _, kind := range testdb.Kinds {
		b.Run(kind, func(b *testing.B) { f(b, testdb.Get(b, kind)) })
	}
}

// benchStore creates a table and a store holding one ten-key session.
func benchStore(b *testing.B, tg *testdb.Target, opts ...session.Option) (*session.Store, visit.Table, string) {
	b.Helper()
	tab := tg.CreateTable(b)
	st, err := session.Open(context.Background(), tg.DB, tg.Dialect, append([]session.Option{session.WithTable(tab)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	s := st.New()
	tenKeys(s)
	if err := st.Save(context.Background(), s); err != nil {
		b.Fatal(err)
	}
	return st, tab, s.Token()
}

// limit measures the bare statement through the same driver and pool,
// prepared once as the fastest plain database/sql use would, and reports
// the store operation's speed as a fraction of it ("limit-ratio": 1.0 means
// as fast as the bare statement).
func limit(b *testing.B, db *sql.DB, query string, args func(i int) []any, exec bool) {
	b.Helper()
	opNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.StopTimer()
	ctx := context.Background()
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var data []byte
	var c, e any
	var v int64
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if exec {
			if _, err := st.ExecContext(ctx, args(i)...); err != nil {
				b.Fatal(err)
			}
		} else if err := st.QueryRowContext(ctx, args(i)...).Scan(&data, &c, &e, &v); err != nil {
			b.Fatal(err)
		}
	}
	bareNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
	b.ReportMetric(bareNs, "bare-ns/op")
	b.ReportMetric(bareNs/opNs, "limit-ratio")
}

func BenchmarkLoad(b *testing.B) {
	benchTargets(b, func(b *testing.B, tg *testdb.Target) {
		st, tab, tok := benchStore(b, tg)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			s, err := st.Load(ctx, tok)
			if err != nil || s.Len() != 10 {
				b.Fatalf("load: %v", err)
			}
		}
		stmts, _ := tg.Dialect.Statements(tab)
		key := visit.HashToken(tok)
		now := tg.Dialect.EncodeTime(time.Now().UTC().Truncate(time.Microsecond))
		limit(b, tg.DB, stmts.Load, func(int) []any { return []any{key, now} }, false)
	})
}

func BenchmarkSave(b *testing.B) {
	for _, mode := range []session.Mode{session.Merge, session.LastWriteWins, session.Locked} {
		b.Run(mode.String(), func(b *testing.B) {
			benchTargets(b, func(b *testing.B, tg *testdb.Target) {
				st, tab, tok := benchStore(b, tg, session.WithMode(mode))
				ctx := context.Background()
				s, err := st.Load(ctx, tok)
				if err != nil {
					b.Fatal(err)
				}
				st.Release(ctx, s)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if mode == session.Locked {
						// A locked save needs its lock: load is part of the cost.
						if s, err = st.Load(ctx, tok); err != nil {
							b.Fatal(err)
						}
					}
					s.Set("cart_items", i)
					if err := st.Save(ctx, s); err != nil {
						b.Fatalf("save: %v", err)
					}
				}
				// The limit: a single-row UPDATE of the data by primary key.
				q := fmt.Sprintf("UPDATE %s SET %s = ? WHERE %s = ?", tg.Dialect.Quote(tab.Name), tg.Dialect.Quote(tab.Data), tg.Dialect.Quote(tab.Key))
				q, err = tg.Dialect.Placeholder().ReplacePlaceholders(q)
				if err != nil {
					b.Fatal(err)
				}
				blob := make([]byte, 200)
				key := visit.HashToken(s.Token())
				limit(b, tg.DB, q, func(i int) []any { blob[0] = byte(i); return []any{blob, key} }, true)
			})
		})
	}
}

func BenchmarkTouch(b *testing.B) {
	benchTargets(b, func(b *testing.B, tg *testdb.Target) {
		now := time.Now()
		clk := func() time.Time { return now }
		st, _, tok := benchStore(b, tg, session.WithClock(clk))
		ctx := context.Background()
		s, err := st.Load(ctx, tok)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			now = now.Add(time.Second)
			if err := st.Touch(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
