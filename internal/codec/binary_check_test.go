package codec

import (
	"bytes"
	"testing"
	"time"
)

// checkIndexed holds Check and Lookup to Decode on arbitrary data: Check
// may not vouch for what Decode refuses, and a Lookup, through indexes of
// every size, finds each decoded value and nothing else.
func checkIndexed(t *testing.T, data []byte) {
	t.Helper()
	ix := binaryCodec{}
	m, derr := ix.Decode(data)
	n, ok := ix.Check(data, nil)
	switch {
	case !ok:
		return // Decode decides
	case derr != nil:
		t.Fatalf("Check vouches for data that Decode refuses: %v", derr)
	case n != len(m):
		t.Fatalf("Check counts %d values, Decode gives %d", n, len(m))
	}
	for _, size := range []int{0, 1, 2, 3, 16} {
		index := make([]uint32, size)
		if n2, ok := ix.Check(data, index); !ok || n2 != n {
			t.Fatalf("Check with an index of %d = %d, %v", size, n2, ok)
		}
		for k, want := range m {
			got, found, err := ix.Lookup(data, index, k)
			if err != nil || !found {
				t.Fatalf("index %d: Lookup(%q) = %v, %v, %v; Decode gives %#v", size, k, got, found, err, want)
			}
			if !sameValues(map[string]any{k: got}, map[string]any{k: want}) {
				t.Fatalf("index %d: Lookup(%q) = %#v; Decode gives %#v", size, k, got, want)
			}
		}
		for _, k := range []string{"", "\x00", "missing key", "\xff\xff\xff"} {
			if _, in := m[k]; in {
				continue
			}
			if v, found, err := ix.Lookup(data, index, k); found || err != nil {
				t.Fatalf("index %d: Lookup(%q) of a missing key = %v, %v, %v", size, k, v, found, err)
			}
		}
	}
}

func TestBinaryCheckRandom(t *testing.T) {
	t.Parallel()
	r := seeded(t, 0xc4ec)
	accepted := 0
	for i := range 2000 {
		_, data := randEncoded(t, r, i)
		if _, ok := (binaryCodec{}).Check(data, nil); ok {
			accepted++
		} else if !bytes.Contains(data, []byte("testPoint")) {
			t.Fatalf("case %d: Check cannot tell for an encoding without gob values", i)
		}
		checkIndexed(t, data)
	}
	if accepted == 0 {
		t.Fatal("Check accepted no encoding")
	}
}

func TestBinaryCheckTruncatedAndCorrupt(t *testing.T) {
	t.Parallel()
	in := tenKeySession()
	in["nested"] = []any{map[string]any{"a": map[string]string{"x": "y"}, "b": []int{1}}, time.Unix(1, 2).In(time.FixedZone("Z", 60))}
	data, err := Binary().Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := (binaryCodec{}).Check(data, nil); !ok {
		t.Fatal("Check does not vouch for an encoding")
	}
	for n := range len(data) {
		if _, ok := (binaryCodec{}).Check(data[:n], nil); ok {
			t.Fatalf("Check vouches for the first %d of %d bytes", n, len(data))
		}
	}
	// Each byte altered in turn: Check and Lookup agree with Decode.
	for i := range data {
		for _, b := range []byte{0, 1, 0x7f, 0x80, 0xff, data[i] + 1} {
			alt := bytes.Clone(data)
			alt[i] = b
			checkIndexed(t, alt)
		}
	}
}

func TestBinaryCheckCannotTell(t *testing.T) {
	t.Parallel()
	withGob, err := Binary().Encode(map[string]any{"a": 1, "p": testPoint{X: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"gob value":                withGob,
		"keys out of order":        session(2, append([]byte{1, 'b'}, tagNil), append([]byte{1, 'a'}, tagNil)),
		"duplicate key":            session(2, entry(tagNil), entry(tagTrue)),
		"duplicate nested key":     session(1, entry(tagAnyMap, 3, 1, 'a', tagNil, 1, 'a', tagNil)),
		"duplicate string map key": session(1, entry(tagStringMap, 3, 1, 'a', 0, 1, 'a', 0)),
	} {
		if _, ok := (binaryCodec{}).Check(data, nil); ok {
			t.Errorf("%s: Check vouches for it", name)
		}
		checkIndexed(t, data)
	}
}

func TestBinaryCheckAllocs(t *testing.T) {
	data, err := Binary().Encode(tenKeySession())
	if err != nil {
		t.Fatal(err)
	}
	ix := binaryCodec{}
	index := make([]uint32, 16)
	if allocs := testing.AllocsPerRun(100, func() {
		if _, ok := ix.Check(data, index); !ok {
			t.Fatal("Check does not vouch for an encoding")
		}
	}); allocs != 0 {
		t.Errorf("Check of ten keys: %v allocations, want 0", allocs)
	}
	// A string value: its copy and its box.
	if allocs := testing.AllocsPerRun(100, func() {
		if v, ok, err := ix.Lookup(data, index, "name"); !ok || err != nil || v != "Ada Lovelace" {
			t.Fatal(v, ok, err)
		}
	}); allocs > 2 {
		t.Errorf("Lookup of a string: %v allocations, want at most 2", allocs)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if _, ok, err := ix.Lookup(data, index, "no such key"); ok || err != nil {
			t.Fatal(ok, err)
		}
	}); allocs != 0 {
		t.Errorf("Lookup of a missing key: %v allocations, want 0", allocs)
	}
}

func TestBinaryLookupDoesNotKeepInput(t *testing.T) {
	t.Parallel()
	data, err := Binary().Encode(map[string]any{"s": "value", "b": []byte("bytes"), "l": []string{"x", "y"}})
	if err != nil {
		t.Fatal(err)
	}
	s, _, _ := binaryCodec{}.Lookup(data, nil, "s")
	b, _, _ := binaryCodec{}.Lookup(data, nil, "b")
	l, _, _ := binaryCodec{}.Lookup(data, nil, "l")
	clear(data)
	if s != "value" || string(b.([]byte)) != "bytes" || l.([]string)[1] != "y" {
		t.Fatalf("looked-up values changed with the input: %v %v %v", s, b, l)
	}
}
