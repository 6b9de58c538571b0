package session

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/codec"
	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/visit"
)

// countingCodec is the binary codec, counting the data it encodes whole
// and the data it patches.
type countingCodec struct {
	codec.Codec
	encodes, patches int
}

func (c *countingCodec) Encode(values map[string]any) ([]byte, error) {
	c.encodes++
	return c.Codec.Encode(values)
}

func (c *countingCodec) Check(data []byte, index []uint32) (int, bool) {
	return c.Codec.(codec.Indexed).Check(data, index)
}

func (c *countingCodec) Lookup(data []byte, index []uint32, key string) (any, bool, error) {
	return c.Codec.(codec.Indexed).Lookup(data, index, key)
}

func (c *countingCodec) Patch(base []byte, changes map[string]bool, values map[string]any) ([]byte, int, bool) {
	c.patches++
	return c.Codec.(codec.Patcher).Patch(base, changes, values)
}

// TestSavesPatchTheirBase follows a session through the writes that patch
// its data (a save of a loaded session, a save after a save, a merge after
// a lost write, a renewal) and those that encode it whole (the first
// insert, a save after Clear), checking after each that the row holds
// exactly what encoding the session's values whole gives.
func TestSavesPatchTheirBase(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		cc := &countingCodec{Codec: codec.Binary()}
		st, err := Open(ctx, tg.DB, tg.Dialect, WithTable(tab), WithCodec(cc))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		model := map[string]any{}
		step := func(name string, sess *Session, encodes, patches int) {
			t.Helper()
			if cc.encodes != encodes || cc.patches != patches {
				t.Fatalf("%s: %d whole encodings and %d patches, want %d and %d", name, cc.encodes, cc.patches, encodes, patches)
			}
			before := cc.encodes
			checkRow(t, tg, tab, st, sess.Token(), model)
			cc.encodes = before // checkRow's own encoding does not count
			l, err := st.Load(ctx, sess.Token())
			if err != nil || !maps.EqualFunc(l.Values(), model, func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
				t.Fatalf("%s: loaded %v, %v; want %v", name, l.Values(), err, model)
			}
		}
		set := func(s *Session, k string, v any) { s.Set(k, v); model[k] = v }
		del := func(s *Session, k string) { s.Delete(k); delete(model, k) }
		save := func(s *Session) {
			t.Helper()
			if err := st.Save(ctx, s); err != nil {
				t.Fatal(err)
			}
		}

		s := st.New()
		for i := range 10 {
			set(s, fmt.Sprintf("k%d", i), fmt.Sprintf("value %d", i))
		}
		save(s)
		step("insert", s, 1, 0)

		set(s, "k3", int64(3))
		save(s)
		step("save after a save", s, 1, 1)

		l, err := st.Load(ctx, s.Token())
		if err != nil {
			t.Fatal(err)
		}
		if l.GetString("k1") != "value 1" {
			t.Fatalf("k1 = %v", l.Get("k1"))
		}
		set(l, "a-first", true)
		set(l, "z-last", []string{"x"})
		del(l, "k5")
		save(l)
		step("save of a loaded session", l, 1, 2)

		// Two requests of one visitor: b loses its write to a and merges
		// its changes into a's data (a's save, b's lost one and b's
		// second one each patch).
		a, _ := st.Load(ctx, s.Token())
		b, _ := st.Load(ctx, s.Token())
		set(a, "k0", "from a")
		save(a)
		set(b, "k9", "from b")
		del(b, "k2")
		save(b)
		step("merge after a lost write", b, 1, 5)
		if st.Stats().Conflicts != 1 {
			t.Fatalf("conflicts = %d, want 1", st.Stats().Conflicts)
		}

		set(b, "k4", 4.5)
		if err := st.Renew(ctx, b); err != nil {
			t.Fatal(err)
		}
		step("renewal", b, 1, 6)

		b.Clear()
		clear(model)
		set(b, "only", "one")
		save(b)
		step("save after Clear", b, 2, 6)

		set(b, "two", 2)
		save(b)
		step("save after a whole encoding", b, 2, 7)
	})
}

// TestSessionOpsAgainstModel runs random sequences of reads, changes,
// saves and loads on sessions, loaded ones reading their values from the
// stored data and taking changes on top of it, and holds every answer to
// a plain map, and every row to what encoding that map whole gives.
func TestSessionOpsAgainstModel(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		st, err := Open(ctx, tg.DB, tg.Dialect, WithTable(tab))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		r := rand.New(rand.NewPCG(seed, 0x5e55))
		keys := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p"}
		value := func() any {
			switch r.IntN(4) {
			case 0:
				return r.Int64N(1 << 40)
			case 1:
				return fmt.Sprintf("s%d", r.IntN(1000))
			case 2:
				return r.IntN(2) == 0
			}
			return []string{"x", fmt.Sprint(r.IntN(9))}
		}

		s := st.New()
		model := map[string]any{}
		for _, k := range keys[:12] {
			v := value()
			s.Set(k, v)
			model[k] = v
		}
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		tok := s.Token()
		stored := maps.Clone(model)
		for i := range 3000 {
			k := keys[r.IntN(len(keys))]
			switch op := r.IntN(12); op {
			case 0: // a new request
				if s, err = st.Load(ctx, tok); err != nil {
					t.Fatal(err)
				}
				model = maps.Clone(stored)
			case 1, 2:
				v := value()
				s.Set(k, v)
				model[k] = v
			case 3:
				changed := s.Changed()
				_, had := model[k]
				s.Delete(k)
				delete(model, k)
				if !had && s.Changed() != changed {
					t.Fatalf("op %d: deleting missing key %q made a change", i, k)
				}
			case 4:
				if got, want := s.Pop(k), model[k]; !reflect.DeepEqual(got, want) {
					t.Fatalf("op %d: Pop(%q) = %v, want %v", i, k, got, want)
				}
				delete(model, k)
			case 5, 6:
				got, ok := s.Lookup(k)
				want, wok := model[k]
				if ok != wok || !reflect.DeepEqual(got, want) {
					t.Fatalf("op %d: Lookup(%q) = %v, %v; want %v, %v", i, k, got, ok, want, wok)
				}
			case 7:
				if s.Len() != len(model) {
					t.Fatalf("op %d: Len = %d, want %d", i, s.Len(), len(model))
				}
			case 8:
				if got := s.Keys(); !slices.Equal(got, slices.Sorted(maps.Keys(model))) {
					t.Fatalf("op %d: Keys = %v, want %v", i, got, slices.Sorted(maps.Keys(model)))
				}
			case 9, 10:
				if err := st.Save(ctx, s); err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
				stored = maps.Clone(model)
				checkRow(t, tg, tab, st, tok, stored)
			case 11:
				if r.IntN(8) == 0 {
					s.Clear()
					clear(model)
				}
			}
		}
	})
}

// checkRow requires the row of tok to hold what encoding values whole
// gives.
func checkRow(t *testing.T, tg *testdb.Target, tab visit.Table, st *Store, tok string, values map[string]any) {
	t.Helper()
	q, err := tg.Dialect.Placeholder().ReplacePlaceholders(fmt.Sprintf("SELECT %s FROM %s WHERE %s = ?",
		tg.Dialect.Quote(tab.Data), tg.Dialect.Quote(tab.Name), tg.Dialect.Quote(tab.Key)))
	if err != nil {
		t.Fatal(err)
	}
	var stored []byte
	if err := tg.DB.QueryRowContext(context.Background(), q, st.cfg.keyMode.StoredKey(tok)).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	want, err := st.encode(values)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, want) {
		t.Fatalf("row holds\n%x\nwant\n%x", stored, want)
	}
}
