package session_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func open(t *testing.T, tg *testdb.Target, tab visit.Table, opts ...session.Option) *session.Store {
	t.Helper()
	st, err := session.Open(context.Background(), tg.DB, tg.Dialect, append([]session.Option{session.WithTable(tab)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func countRows(t *testing.T, tg *testdb.Target, tab visit.Table) int {
	t.Helper()
	var n int
	if err := tg.DB.QueryRow("SELECT count(*) FROM " + tg.Dialect.Quote(tab.Name)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOpenChecksSchema(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.Table(t)
		_, err := session.Open(ctx, tg.DB, tg.Dialect, session.WithTable(tab))
		if !errors.Is(err, session.ErrSchema) || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("missing table: got %v", err)
		}
		if _, err := tg.DB.Exec("CREATE TABLE " + tg.Dialect.Quote(tab.Name) + " (visit_key VARCHAR(40) NOT NULL PRIMARY KEY, session_data " +
			map[string]string{"postgres": "BYTEA", "mysql": "BLOB", "sqlite": "BLOB"}[tg.Kind] + ")"); err != nil {
			t.Fatal(err)
		}
		_, err = session.Open(ctx, tg.DB, tg.Dialect, session.WithTable(tab))
		if !errors.Is(err, session.ErrSchema) || !strings.Contains(err.Error(), `"created"`) || !strings.Contains(err.Error(), "ADD COLUMN") {
			t.Fatalf("missing column: got %v", err)
		}
		if _, err := visit.Migrate(ctx, tg.DB, tg.Dialect, tab); err != nil {
			t.Fatal(err)
		}
		open(t, tg, tab)
	})
}

func TestOpenRejectsInvalidOptions(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	tab := tg.CreateTable(t)
	bad := map[string][]session.Option{
		"idle":     {session.WithIdleTimeout(0)},
		"size":     {session.WithMaxSize(0)},
		"attempts": {session.WithMaxAttempts(0)},
		"mode":     {session.WithMode(session.Mode(42))},
		"table":    {session.WithTable(tab.WithName("visit; DROP TABLE x"))},
		"column":   {session.WithTable(visit.Table{Name: "v", Key: "k`", Data: "d", Created: "c", Expiry: "e", Version: "v"})},
		"codec":    {session.WithCodec(nil)},
		"clock":    {session.WithClock(nil)},
	}
	for name, opts := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := session.Open(context.Background(), tg.DB, tg.Dialect, append([]session.Option{session.WithTable(tab)}, opts...)...); err == nil {
				t.Fatal("Open accepted invalid options")
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		clk := newClock()
		st := open(t, tg, tab, session.WithClock(clk.Now))

		// A malformed token costs no query and is not adopted.
		for _, tok := range []string{"", "short", strings.Repeat("x", 39) + "'", strings.Repeat("a", 41)} {
			s, err := st.Load(ctx, tok)
			if err != nil || !s.IsNew() || s.Token() != "" {
				t.Fatalf("Load(%q) = new %v token %q err %v", tok, s.IsNew(), s.Token(), err)
			}
		}
		if n := st.Stats().Loads; n != 0 {
			t.Fatalf("malformed tokens ran %d loads", n)
		}
		// An unknown well-formed token is not adopted either.
		unknown := visit.NewToken()
		s, err := st.Load(ctx, unknown)
		if err != nil || !s.IsNew() {
			t.Fatalf("unknown token: new=%v err=%v", s.IsNew(), err)
		}
		// Empty sessions are not written.
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, tg, tab); n != 0 {
			t.Fatalf("empty session wrote %d rows", n)
		}
		s.Set("user", int64(42))
		s.Set("name", "Zoë")
		s.Set("roles", []string{"a", "b"})
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		tok := s.Token()
		if tok == "" || tok == unknown {
			t.Fatalf("token after insert = %q", tok)
		}
		// The table holds only the hash of the token.
		var stored string
		if err := tg.DB.QueryRow("SELECT visit_key FROM " + tg.Dialect.Quote(tab.Name)).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != visit.HashToken(tok) {
			t.Fatalf("stored key %q, want hash of token", stored)
		}

		clk.Add(time.Minute)
		s2, err := st.Load(ctx, tok)
		if err != nil || s2.IsNew() {
			t.Fatalf("reload: new=%v err=%v", s2.IsNew(), err)
		}
		if s2.GetInt64("user") != 42 || s2.GetString("name") != "Zoë" || strings.Join(s2.GetStrings("roles"), ",") != "a,b" {
			t.Fatalf("values = %v", s2.Values())
		}
		if !s2.Created().Equal(newClock().Now().Truncate(time.Microsecond)) {
			t.Fatalf("created = %v", s2.Created())
		}

		// Renew: new token, same data, the old token stops working.
		if err := st.Renew(ctx, s2); err != nil {
			t.Fatal(err)
		}
		if s2.Token() == tok || !s2.Renewed() {
			t.Fatal("renew kept the token")
		}
		if old, _ := st.Load(ctx, tok); !old.IsNew() {
			t.Fatal("old token still loads after renew")
		}
		s3, err := st.Load(ctx, s2.Token())
		if err != nil || s3.GetInt64("user") != 42 {
			t.Fatalf("renewed session: %v %v", s3.Values(), err)
		}

		// Destroy keeps the row, clears data and ends it.
		if err := st.Destroy(ctx, s3); err != nil {
			t.Fatal(err)
		}
		if gone, _ := st.Load(ctx, s2.Token()); !gone.IsNew() {
			t.Fatal("destroyed session still loads")
		}
		var null bool
		if err := tg.DB.QueryRow("SELECT session_data IS NULL FROM " + tg.Dialect.Quote(tab.Name)).Scan(&null); err != nil || !null {
			t.Fatalf("destroyed row: data null=%v err=%v", null, err)
		}
		if n := countRows(t, tg, tab); n != 1 {
			t.Fatalf("rows after destroy = %d, want the visit row kept", n)
		}
		// A concurrent save of the destroyed session reports it gone.
		s2.Set("late", true)
		if err := st.Save(ctx, s2); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("save after destroy: %v", err)
		}
	})
}

func TestExpiryBoundaries(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		clk := newClock()
		st := open(t, tg, tab, session.WithClock(clk.Now), session.WithIdleTimeout(time.Hour), session.WithAbsoluteTimeout(3*time.Hour))
		s := st.New()
		s.Set("k", "v")
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		want := clk.Now().Truncate(time.Microsecond).Add(time.Hour)
		if !s.Expiry().Equal(want) {
			t.Fatalf("expiry %v, want %v", s.Expiry(), want)
		}
		clk.Add(time.Hour - time.Microsecond)
		if l, _ := st.Load(ctx, s.Token()); l.IsNew() || !l.Expiry().Equal(want) {
			t.Fatalf("one microsecond before expiry: new=%v expiry=%v", l.IsNew(), l.Expiry())
		}
		clk.Add(time.Microsecond)
		if l, _ := st.Load(ctx, s.Token()); !l.IsNew() {
			t.Fatal("session loads at its expiry instant")
		}

		// Absolute timeout caps extensions; expiry never moves back.
		clk2 := newClock()
		st2 := open(t, tg, tab, session.WithClock(clk2.Now), session.WithIdleTimeout(time.Hour), session.WithAbsoluteTimeout(90*time.Minute), session.WithTouchInterval(0))
		s = st2.New()
		s.Set("k", 1)
		if err := st2.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		created := s.Created()
		clk2.Add(50 * time.Minute)
		l, _ := st2.Load(ctx, s.Token())
		if err := st2.Save(ctx, l); err != nil { // touch
			t.Fatal(err)
		}
		if !l.Expiry().Equal(created.Add(90 * time.Minute)) {
			t.Fatalf("touched expiry %v, want the absolute cap %v", l.Expiry(), created.Add(90*time.Minute))
		}
		clk2.Add(40*time.Minute + time.Microsecond)
		if l, _ := st2.Load(ctx, s.Token()); !l.IsNew() {
			t.Fatal("session outlived its absolute timeout")
		}
	})
}

func TestDatesAfter2038(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		at := time.Date(2100, 6, 7, 8, 9, 10, 987654321, time.FixedZone("X", 5*3600+1800))
		st := open(t, tg, tab, session.WithClock(func() time.Time { return at }))
		s := st.New()
		s.Set("k", "v")
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		l, err := st.Load(ctx, s.Token())
		if err != nil || l.IsNew() {
			t.Fatalf("load: %v new=%v", err, l.IsNew())
		}
		want := at.UTC().Truncate(time.Microsecond)
		if !l.Created().Equal(want) || l.Created().Location() != time.UTC {
			t.Fatalf("created %v, want %v UTC", l.Created(), want)
		}
	})
}

func TestTooLargeWritesNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		st := open(t, tg, tab, session.WithMaxSize(1024))
		s := st.New()
		s.Set("big", strings.Repeat("x", 2000))
		if err := st.Save(ctx, s); !errors.Is(err, session.ErrTooLarge) {
			t.Fatalf("new oversized: %v", err)
		}
		if n := countRows(t, tg, tab); n != 0 {
			t.Fatalf("oversized new session wrote %d rows", n)
		}
		s = st.New()
		s.Set("small", "ok")
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		s.Set("big", strings.Repeat("x", 2000))
		if err := st.Save(ctx, s); !errors.Is(err, session.ErrTooLarge) {
			t.Fatalf("existing oversized: %v", err)
		}
		l, _ := st.Load(ctx, s.Token())
		if l.GetString("small") != "ok" || l.Has("big") {
			t.Fatalf("stored data changed: %v", l.Values())
		}
	})
}

func TestCorruptData(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		st := open(t, tg, tab)
		s := st.New()
		s.Set("k", "v")
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		q := "UPDATE " + tg.Dialect.Quote(tab.Name) + " SET session_data = " + map[string]string{"postgres": "'\\xdeadbeef'::bytea", "mysql": "X'DEADBEEF'", "sqlite": "X'DEADBEEF'"}[tg.Kind]
		if _, err := tg.DB.Exec(q); err != nil {
			t.Fatal(err)
		}
		l, err := st.Load(ctx, s.Token())
		if !errors.Is(err, session.ErrCorrupt) {
			t.Fatalf("load corrupt: %v", err)
		}
		if st.Stats().DecodeErrors != 1 {
			t.Fatalf("decode errors = %d", st.Stats().DecodeErrors)
		}
		l.Set("fresh", 1)
		if err := st.Save(ctx, l); err != nil {
			t.Fatalf("save over corrupt data: %v", err)
		}
		l2, err := st.Load(ctx, s.Token())
		if err != nil || l2.GetInt("fresh") != 1 {
			t.Fatalf("after repair: %v %v", l2.Values(), err)
		}
	})
}

// TestCorruptColumns: SQLite keeps what a foreign writer puts in a column
// whatever its declared type; a version that is not an integer, or a
// creation or expiry that is not a time, is reported as ErrCorrupt by the
// load, naming the column.
func TestCorruptColumns(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	ctx := context.Background()
	tab := tg.CreateTable(t)
	st := open(t, tg, tab)
	for _, c := range []struct{ name, column string }{
		{"version", tab.Version}, {"created", tab.Created}, {"expiry", tab.Expiry},
	} {
		tok := seed(t, st, map[string]any{"k": "v"})
		// Text sorts after every number in SQLite, so the row stays live.
		if _, err := tg.DB.Exec("UPDATE "+tg.Dialect.Quote(tab.Name)+" SET "+tg.Dialect.Quote(c.column)+" = 'one' WHERE "+
			tg.Dialect.Quote(tab.Key)+" = ?", visit.HashToken(tok)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Load(ctx, tok); !errors.Is(err, session.ErrCorrupt) || !strings.Contains(err.Error(), c.name) {
			t.Fatalf("load with a text %s: %v, want ErrCorrupt naming it", c.name, err)
		}
	}
}

func TestMergeKeepsDisjointChanges(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		st := open(t, tg, tab)
		s := st.New()
		s.Set("base", 1)
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		a, _ := st.Load(ctx, s.Token())
		b, _ := st.Load(ctx, s.Token())
		a.Set("a", "from a")
		b.Set("b", "from b")
		b.Delete("base")
		if err := st.Save(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := st.Save(ctx, b); err != nil {
			t.Fatal(err)
		}
		l, _ := st.Load(ctx, s.Token())
		if l.GetString("a") != "from a" || l.GetString("b") != "from b" || l.Has("base") {
			t.Fatalf("merged values = %v", l.Values())
		}
		if st.Stats().Conflicts != 1 {
			t.Fatalf("conflicts = %d, want 1", st.Stats().Conflicts)
		}
		// A renewal elsewhere makes a concurrent save report the session gone.
		c, _ := st.Load(ctx, s.Token())
		d, _ := st.Load(ctx, s.Token())
		if err := st.Renew(ctx, c); err != nil {
			t.Fatal(err)
		}
		d.Set("x", 1)
		if err := st.Save(ctx, d); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("save after concurrent renew: %v", err)
		}
	})
}

func TestUnchangedSessionTouchesOncePerInterval(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		clk := newClock()
		st := open(t, tg, tab, session.WithClock(clk.Now), session.WithIdleTimeout(time.Hour), session.WithTouchInterval(10*time.Minute))
		s := st.New()
		s.Set("k", "v")
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 30; i++ { // 30 read-only requests a minute apart
			clk.Add(time.Minute)
			l, err := st.Load(ctx, s.Token())
			if err != nil || l.IsNew() {
				t.Fatalf("load %d: %v", i, err)
			}
			if err := st.Save(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		if got := st.Stats(); got.Touches != 3 || got.Updates != 0 {
			t.Fatalf("touches=%d updates=%d, want 3 touches and no data write", got.Touches, got.Updates)
		}
	})
}

func TestLockedModeSerializesCounters(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		st := open(t, tg, tab, session.WithMode(session.Locked), session.WithLockTimeout(30*time.Second))
		s := st.New()
		s.Set("n", 0)
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		const workers, each = 4, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					l, err := st.Load(ctx, s.Token())
					if err != nil {
						errs <- err
						return
					}
					l.Set("n", l.GetInt("n")+1)
					if err := st.Save(ctx, l); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		l, _ := st.Load(ctx, s.Token())
		st.Release(ctx, l)
		if got := l.GetInt("n"); got != workers*each {
			t.Fatalf("counter = %d, want %d", got, workers*each)
		}
	})
}

func TestLockedModeTimesOut(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		st := open(t, tg, tab, session.WithMode(session.Locked), session.WithLockTimeout(300*time.Millisecond))
		s := st.New()
		s.Set("n", 0)
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		holder, err := st.Load(ctx, s.Token())
		if err != nil || !holder.Locked() {
			t.Fatalf("first load: locked=%v err=%v", holder.Locked(), err)
		}
		_, err = st.Load(ctx, s.Token())
		if !errors.Is(err, session.ErrLockTimeout) {
			t.Fatalf("second load while locked: %v", err)
		}
		st.Release(ctx, holder)
		again, err := st.Load(ctx, s.Token())
		if err != nil || !again.Locked() {
			t.Fatalf("load after release: %v", err)
		}
		st.Release(ctx, again)
		if got := tg.DB.Stats().InUse; got != 0 {
			t.Fatalf("connections in use after release: %d", got)
		}
	})
}
