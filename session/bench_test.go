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

// limitBlock is how many store operations, and then bare statements, each
// block of an interleaved benchmark runs.
const limitBlock = 100

// interleaved measures a store operation against its limit, the bare
// statement through the same driver and pool, prepared once as the
// fastest plain database/sql use would. It runs op and bare b.N times each
// in alternating blocks, so that both see the same machine (a busy
// neighbour, a checkpoint, a warm cache hits both alike), times only op
// for ns/op and allocs/op, and reports bare-ns/op and limit-ratio, the
// bare statement's time over the operation's (1.0: as fast as the bare
// statement).
func interleaved(b *testing.B, op func(i int), bare func(i int)) {
	b.Helper()
	var opTime, bareTime time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(limitBlock, b.N-i)
		start := time.Now()
		for j := range n {
			op(i + j)
		}
		opTime += time.Since(start)
		b.StopTimer()
		start = time.Now()
		for j := range n {
			bare(i + j)
		}
		bareTime += time.Since(start)
		b.StartTimer()
		i += n
	}
	b.StopTimer()
	b.ReportMetric(float64(bareTime.Nanoseconds())/float64(b.N), "bare-ns/op")
	b.ReportMetric(float64(bareTime)/float64(opTime), "limit-ratio")
}

// bareUpdate is the limit of a save: a single-row UPDATE by primary key
// of the data and the expiry; args data, expiry, key.
func bareUpdate(b *testing.B, tg *testdb.Target, tab visit.Table) string {
	b.Helper()
	q := fmt.Sprintf("UPDATE %s SET %s = ?, %s = ? WHERE %s = ?", tg.Dialect.Quote(tab.Name), tg.Dialect.Quote(tab.Data),
		tg.Dialect.Quote(tab.Expiry), tg.Dialect.Quote(tab.Key))
	q, err := tg.Dialect.Placeholder().ReplacePlaceholders(q)
	if err != nil {
		b.Fatal(err)
	}
	return q
}

// bareSave returns the limit of a save, run i: a single-row UPDATE by
// primary key of the data and the expiry, what a save must change (a
// sliding expiry moves the row in the expiry index), of another row of
// the same table, which it creates.
func bareSave(b *testing.B, tg *testdb.Target, st *session.Store, tab visit.Table) func(i int) {
	b.Helper()
	ctx := context.Background()
	other := st.New()
	tenKeys(other)
	if err := st.Save(ctx, other); err != nil {
		b.Fatal(err)
	}
	upd := prepare(b, tg.DB, bareUpdate(b, tg, tab))
	blob := make([]byte, 200)
	key := visit.HashToken(other.Token())
	at := time.Now().Add(time.Hour)
	return func(i int) {
		blob[0], blob[1] = byte(i), byte(i>>8)
		if _, err := upd.ExecContext(ctx, blob, tg.Dialect.EncodeTime(at.Add(time.Duration(i)*time.Second)), key); err != nil {
			b.Fatal(err)
		}
	}
}

// prepare prepares query on db for the rest of the benchmark.
func prepare(b *testing.B, db *sql.DB, query string) *sql.Stmt {
	b.Helper()
	st, err := db.PrepareContext(context.Background(), query)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkLoad measures a load of a ten-key session that reads one of its
// values, as a request does, beside the bare SELECT of the row.
func BenchmarkLoad(b *testing.B) {
	benchLoad(b, visit.KeyHashed, func(s *session.Session) bool { return s.Len() == 10 && s.GetInt64("user_id") == 1234567 })
}

// BenchmarkLoadAll measures a load of a ten-key session that reads all of
// its values, beside the bare SELECT of the row.
func BenchmarkLoadAll(b *testing.B) {
	benchLoad(b, visit.KeyHashed, func(s *session.Session) bool { return len(s.Values()) == 10 })
}

// BenchmarkLoadPlainKey is BenchmarkLoad with tokens stored as they are,
// not hashed: the difference is the cost of hashing the token.
func BenchmarkLoadPlainKey(b *testing.B) {
	benchLoad(b, visit.KeyPlain, func(s *session.Session) bool { return s.Len() == 10 && s.GetInt64("user_id") == 1234567 })
}

func benchLoad(b *testing.B, mode visit.KeyMode, read func(s *session.Session) bool) {
	benchTargets(b, func(b *testing.B, tg *testdb.Target) {
		st, tab, tok := benchStore(b, tg, session.WithKeyMode(mode))
		ctx := context.Background()
		interleaved(b, func(int) {
			s, err := st.Load(ctx, tok)
			if err != nil || !read(s) {
				b.Fatalf("load: %v", err)
			}
		}, bareLoad(b, tg, tab, mode.StoredKey(tok), time.Now()))
	})
}

// bareLoad returns the limit of a load: the store's SELECT of the row
// stored under key, live at instant at, prepared, scanned into a []byte
// and plain destinations as plain database/sql code would.
func bareLoad(b *testing.B, tg *testdb.Target, tab visit.Table, key string, at time.Time) func(int) {
	b.Helper()
	stmts, _ := tg.Dialect.Statements(tab)
	sel := prepare(b, tg.DB, stmts.Load)
	now := tg.Dialect.EncodeTime(at.UTC().Truncate(time.Microsecond))
	ctx := context.Background()
	var data []byte
	var created, expiry any
	var version int64
	return func(int) {
		if err := sel.QueryRowContext(ctx, key, now).Scan(&data, &created, &expiry, &version); err != nil {
			b.Fatal(err)
		}
	}
}

// loadStepSink keeps each step's Session alive, as a load's caller does.
var loadStepSink *session.Session

// BenchmarkLoadInPlace builds BenchmarkLoad's operation up one step at a
// time, each version beside the same bare SELECT, so that each step's cost
// shows as it is between the database's statements (caches cold, the
// driver's work in between), where BenchmarkLoadSteps measures the steps
// alone in a tight loop: the read of the row under a key and an instant
// given (read), then with the token hashed into its key (token), the clock
// read (clock), the Session allocated (session), the stored data checked
// for reads (check), and last the whole load reading one value, as
// BenchmarkLoad does (load).
func BenchmarkLoadInPlace(b *testing.B) {
	benchTargets(b, func(b *testing.B, tg *testdb.Target) {
		st, tab, tok := benchStore(b, tg)
		ctx := context.Background()
		key := visit.HashToken(tok)
		at := time.Now().UTC().Truncate(time.Microsecond)
		bare := bareLoad(b, tg, tab, key, at)
		read := func(key string, at time.Time) []byte {
			data, err := st.LoadStepRead(ctx, tok, key, at)
			if err != nil {
				b.Fatal(err)
			}
			return data
		}
		for _, step := range []struct {
			name string
			op   func(int)
		}{
			{"read", func(int) { read(key, at) }},
			{"token", func(int) { read(st.LoadStepKey(tok), at) }},
			{"clock", func(int) { read(st.LoadStepKey(tok), st.LoadStepNow()) }},
			{"session", func(int) {
				read(st.LoadStepKey(tok), st.LoadStepNow())
				loadStepSink = new(session.Session)
			}},
			{"check", func(int) {
				k := st.LoadStepKey(tok)
				s, err := st.LoadStepBind(tok, k, read(k, st.LoadStepNow()))
				if err != nil {
					b.Fatal(err)
				}
				loadStepSink = s
			}},
			{"load", func(int) {
				s, err := st.Load(ctx, tok)
				if err != nil || s.Len() != 10 || s.GetInt64("user_id") != 1234567 {
					b.Fatalf("load: %v", err)
				}
				loadStepSink = s
			}},
		} {
			b.Run(step.name, func(b *testing.B) { interleaved(b, step.op, bare) })
		}
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
				interleaved(b, func(i int) {
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
				}, bareSave(b, tg, st, tab))
			})
		})
	}
}

// BenchmarkLockedCycle measures a request's work in Locked mode — the
// locking load, a change and the save — beside its own limit: the bare
// transaction of the same statements through the same driver and pool
// (database/sql's BEGIN, the dialect's TakeLock where it has one, the
// locking SELECT of the row, a single-row UPDATE of data and expiry,
// COMMIT), as plain database/sql code would run it: in a *sql.Tx through
// statements prepared once, as the engine runs it; or, for a dialect whose
// own BEGIN takes the lock, as text on a dedicated connection, which
// database/sql cannot run prepared statements on.
func BenchmarkLockedCycle(b *testing.B) {
	benchTargets(b, func(b *testing.B, tg *testdb.Target) {
		st, tab, tok := benchStore(b, tg, session.WithMode(session.Locked))
		ctx := context.Background()
		other := st.New()
		tenKeys(other)
		if err := st.Save(ctx, other); err != nil {
			b.Fatal(err)
		}
		stmts, _ := tg.Dialect.Statements(tab)
		upd := bareUpdate(b, tg, tab)
		lk := tg.Dialect.Lock()
		var takeStmt, selStmt, updStmt *sql.Stmt // for the transaction; a dedicated connection runs text
		if lk.Begin == "" {
			selStmt, updStmt = prepare(b, tg.DB, stmts.LoadLocked), prepare(b, tg.DB, upd)
			if stmts.TakeLock != "" {
				takeStmt = prepare(b, tg.DB, stmts.TakeLock)
			}
		}
		key := visit.HashToken(other.Token())
		now := tg.Dialect.EncodeTime(time.Now().UTC().Truncate(time.Microsecond))
		at := time.Now().Add(time.Hour)
		var data []byte
		var created, expiry any
		var version int64
		interleaved(b, func(i int) {
			s, err := st.Load(ctx, tok)
			if err != nil {
				b.Fatal(err)
			}
			s.Set("cart_items", i)
			if err := st.Save(ctx, s); err != nil {
				b.Fatalf("save: %v", err)
			}
		}, func(i int) {
			var err error
			exp := tg.Dialect.EncodeTime(at.Add(time.Duration(i) * time.Second))
			if lk.Begin == "" {
				tx, err := tg.DB.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				if takeStmt != nil {
					if _, err = tx.StmtContext(ctx, takeStmt).ExecContext(ctx); err != nil {
						b.Fatal(err)
					}
				}
				if err = tx.StmtContext(ctx, selStmt).QueryRowContext(ctx, key, now).Scan(&data, &created, &expiry, &version); err == nil {
					data[0] = byte(i)
					if _, err = tx.StmtContext(ctx, updStmt).ExecContext(ctx, data, exp, key); err == nil {
						err = tx.Commit()
					}
				}
				if err != nil {
					b.Fatal(err)
				}
				return
			}
			conn, err := tg.DB.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			if _, err = conn.ExecContext(ctx, lk.Begin); err == nil {
				if err = conn.QueryRowContext(ctx, stmts.LoadLocked, key, now).Scan(&data, &created, &expiry, &version); err == nil {
					data[0] = byte(i)
					if _, err = conn.ExecContext(ctx, upd, data, exp, key); err == nil {
						_, err = conn.ExecContext(ctx, lk.Commit)
					}
				}
			}
			if err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkTouch measures an expiry-only update beside its limit, a bare
// single-row UPDATE of the expiry by primary key.
func BenchmarkTouch(b *testing.B) {
	benchTargets(b, func(b *testing.B, tg *testdb.Target) {
		now := time.Now()
		clk := func() time.Time { return now }
		st, tab, tok := benchStore(b, tg, session.WithClock(clk))
		ctx := context.Background()
		s, err := st.Load(ctx, tok)
		if err != nil {
			b.Fatal(err)
		}
		other := st.New()
		tenKeys(other)
		if err := st.Save(ctx, other); err != nil {
			b.Fatal(err)
		}
		q := fmt.Sprintf("UPDATE %s SET %s = ? WHERE %s = ?", tg.Dialect.Quote(tab.Name), tg.Dialect.Quote(tab.Expiry), tg.Dialect.Quote(tab.Key))
		if q, err = tg.Dialect.Placeholder().ReplacePlaceholders(q); err != nil {
			b.Fatal(err)
		}
		upd := prepare(b, tg.DB, q)
		key := visit.HashToken(other.Token())
		at := time.Now().Add(time.Hour)
		interleaved(b, func(int) {
			now = now.Add(time.Second)
			if err := st.Touch(ctx, s); err != nil {
				b.Fatal(err)
			}
		}, func(i int) {
			if _, err := upd.ExecContext(ctx, tg.Dialect.EncodeTime(at.Add(time.Duration(i)*time.Second)), key); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkSaveStatement runs the engine's merge-mode UPDATE alone, bare
// and prepared, with no engine code around it, beside the bare single-row
// UPDATE that BenchmarkSave compares saves with: the part of a save's
// distance from that limit that the statement itself takes (its version
// check, forward-only expiry, liveness test and version bump).
func BenchmarkSaveStatement(b *testing.B) {
	benchTargets(b, func(b *testing.B, tg *testdb.Target) {
		st, tab, tok := benchStore(b, tg)
		ctx := context.Background()
		stmts, _ := tg.Dialect.Statements(tab)
		eng := prepare(b, tg.DB, stmts.Update)
		blob := make([]byte, 200)
		key := visit.HashToken(tok)
		version := int64(1)
		at := time.Now().Add(time.Hour)
		now := tg.Dialect.EncodeTime(time.Now())
		interleaved(b, func(i int) {
			blob[0], blob[1] = byte(i), byte(i>>8)
			exp := tg.Dialect.EncodeTime(at.Add(time.Duration(i) * time.Second))
			res, err := eng.ExecContext(ctx, blob, exp, exp, key, version, now)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				b.Fatalf("updated %d rows: %v", n, err)
			}
			version++
		}, bareSave(b, tg, st, tab))
	})
}

// BenchmarkLoadCancellable measures a load under a context that can be
// cancelled, as a net/http server's requests have, beside the same load
// under one that cannot, as the other benchmarks use: the work each
// driver does per statement to watch the context.
func BenchmarkLoadCancellable(b *testing.B) {
	benchTargets(b, func(b *testing.B, tg *testdb.Target) {
		st, _, tok := benchStore(b, tg)
		cctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		interleaved(b, func(int) {
			if _, err := st.Load(cctx, tok); err != nil {
				b.Fatal(err)
			}
		}, func(int) {
			if _, err := st.Load(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		})
	})
}
