package session_test

import (
	"context"
	"encoding/gob"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/visit"
)

// decodeTestPoint is a gob-registered type: a session holding one is
// decoded whole at load.
type decodeTestPoint struct{ X, Y int }

func init() { gob.Register(decodeTestPoint{}) }

// richValues is a session of every shape a read decodes on its own.
func richValues() map[string]any {
	return map[string]any{
		"user_id":  int64(1234567),
		"name":     "Ada Lovelace",
		"roles":    []string{"admin", "editor"},
		"login_at": time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		"mfa":      true,
		"score":    98.6,
		"blob":     []byte{0, 1, 2},
		"prefs":    map[string]any{"theme": "dark", "sizes": []any{1, "two", nil}},
		"labels":   map[string]string{"a": "b"},
		"nothing":  nil,
	}
}

// TestReadsDecodeOnDemand checks that every way of reading a loaded
// session sees the stored values, whether a read decodes its value alone
// or the session is decoded whole, and however reads and changes mix.
func TestReadsDecodeOnDemand(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		st := open(t, tg, tab)
		want := richValues()
		tok := seed(t, st, want)

		t.Run("reads", func(t *testing.T) {
			s, err := st.Load(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if s.Len() != len(want) || s.IsNew() {
				t.Fatalf("Len = %d, IsNew = %v", s.Len(), s.IsNew())
			}
			// Each key read three times: past the reads taken one by one,
			// and then from the whole decoded session.
			for range 3 {
				for k, v := range want {
					got, ok := s.Lookup(k)
					if !ok || !reflect.DeepEqual(got, v) {
						t.Fatalf("Lookup(%q) = %#v, %v; want %#v", k, got, ok, v)
					}
				}
				if s.Has("missing") || s.Get("missing") != nil {
					t.Fatal("a missing key reads as present")
				}
			}
			if !reflect.DeepEqual(s.Values(), want) || !slices.Equal(s.Keys(), slices.Sorted(maps.Keys(want))) {
				t.Fatalf("Values = %#v", s.Values())
			}
			if s.Changed() {
				t.Fatal("reading changed the session")
			}
		})

		t.Run("typed getters", func(t *testing.T) {
			s, err := st.Load(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if s.GetInt64("user_id") != 1234567 || s.GetString("name") != "Ada Lovelace" || !s.GetBool("mfa") ||
				s.GetFloat64("score") != 98.6 || !s.GetTime("login_at").Equal(want["login_at"].(time.Time)) ||
				!slices.Equal(s.GetStrings("roles"), []string{"admin", "editor"}) || len(s.GetBytes("blob")) != 3 {
				t.Fatalf("typed getters disagree with the stored values")
			}
		})

		t.Run("changes after reads", func(t *testing.T) {
			tok := seed(t, st, want)
			s, err := st.Load(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			_ = s.Get("name")
			s.Set("cart", 3)
			s.Delete("roles")
			if v := s.Pop("mfa"); v != true {
				t.Fatalf("Pop = %v", v)
			}
			if s.Len() != len(want)-1 {
				t.Fatalf("Len after changes = %d", s.Len())
			}
			if err := st.Save(ctx, s); err != nil {
				t.Fatal(err)
			}
			exp := richValues()
			exp["cart"] = 3
			delete(exp, "roles")
			delete(exp, "mfa")
			got, err := st.Load(ctx, tok)
			if err != nil || !reflect.DeepEqual(got.Values(), exp) {
				t.Fatalf("after save: %#v, %v", got.Values(), err)
			}
		})

		t.Run("clear", func(t *testing.T) {
			tok := seed(t, st, want)
			s, err := st.Load(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			s.Clear()
			if s.Len() != 0 || s.Get("name") != nil || !s.Changed() {
				t.Fatalf("after Clear: Len %d, name %v, changed %v", s.Len(), s.Get("name"), s.Changed())
			}
			if err := st.Save(ctx, s); err != nil {
				t.Fatal(err)
			}
			got, err := st.Load(ctx, tok)
			if err != nil || got.Len() != 0 {
				t.Fatalf("after save: %d values, %v", got.Len(), err)
			}
		})

		t.Run("renew keeps the stored bytes", func(t *testing.T) {
			tok := seed(t, st, want)
			before := storedData(t, tg, tab, tok)
			s, err := st.Load(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Renew(ctx, s); err != nil {
				t.Fatal(err)
			}
			if after := storedData(t, tg, tab, s.Token()); string(after) != string(before) {
				t.Fatalf("renewal rewrote the data:\n%x\n%x", before, after)
			}
			got, err := st.Load(ctx, s.Token())
			if err != nil || !reflect.DeepEqual(got.Values(), want) {
				t.Fatalf("after renew: %#v, %v", got.Values(), err)
			}
		})

		t.Run("gob value", func(t *testing.T) {
			vals := richValues()
			vals["point"] = decodeTestPoint{X: 1, Y: 2}
			tok := seed(t, st, vals)
			s, err := st.Load(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if s.Get("point") != (decodeTestPoint{X: 1, Y: 2}) || !reflect.DeepEqual(s.Values(), vals) {
				t.Fatalf("values = %#v", s.Values())
			}
		})

		t.Run("concurrent reads", func(t *testing.T) {
			s, err := st.Load(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 20 {
						if g == 0 && i == 10 {
							s.Set("extra", i)
						}
						if s.GetString("name") != "Ada Lovelace" || s.GetInt64("user_id") != 1234567 {
							t.Error("concurrent read saw another value")
							return
						}
					}
				})
			}
			wg.Wait()
		})
	})
}

// storedData returns the session data stored for tok.
func storedData(t *testing.T, tg *testdb.Target, tab visit.Table, tok string) []byte {
	t.Helper()
	q, err := tg.Dialect.Placeholder().ReplacePlaceholders("SELECT " + tg.Dialect.Quote(tab.Data) + " FROM " +
		tg.Dialect.Quote(tab.Name) + " WHERE " + tg.Dialect.Quote(tab.Key) + " = ?")
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	if err := tg.DB.QueryRow(q, visit.HashToken(tok)).Scan(&data); err != nil {
		t.Fatal(err)
	}
	return data
}

// TestLoadedDataOutlivesLaterLoads: a loaded session keeps its stored data
// undecoded until read, so that data must be its own, not memory the
// driver reuses: a session loaded first and read after many other loads
// on the same pool still reads its own values, on every database.
func TestLoadedDataOutlivesLaterLoads(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		ctx := context.Background()
		tab := tg.CreateTable(t)
		st := open(t, tg, tab)
		first := map[string]any{"name": strings.Repeat("a", 300), "n": int64(1)}
		tok := seed(t, st, first)
		others := make([]string, 8)
		for i := range others {
			others[i] = seed(t, st, map[string]any{"name": strings.Repeat(string(rune('b'+i)), 300), "n": int64(i + 2)})
		}
		s, err := st.Load(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			for _, o := range others {
				if _, err := st.Load(ctx, o); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := s.Values(); !reflect.DeepEqual(got, first) {
			t.Fatalf("values after later loads: name %.8q…, n %v; want %.8q…, 1", got["name"], got["n"], first["name"])
		}
	})
}
