package codec

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkPatched patches data, when it decodes, with changes derived from it
// (its first key deleted, its last key set anew, a key past every other
// one added) and requires the result to decode to the changed values and
// to be what Encode writes for them. Data that does not decode must not be
// patched.
func checkPatched(t *testing.T, data []byte) {
	t.Helper()
	base, err := Binary().Decode(data)
	if err != nil {
		if out, _, ok := (binaryCodec{}).Patch(data, map[string]bool{"k": true}, map[string]any{"k": 1}); ok {
			t.Fatalf("Patch of data that does not decode gave %x", out)
		}
		return
	}
	values := maps.Clone(base)
	changes := map[string]bool{"\xff\xff\xff\xff": true}
	values["\xff\xff\xff\xff"] = int64(len(data))
	if keys := slices.Sorted(maps.Keys(base)); len(keys) > 0 {
		changes[keys[0]] = false
		delete(values, keys[0])
		last := keys[len(keys)-1]
		changes[last], values[last] = true, "patched"
	}
	out, n, ok := (binaryCodec{}).Patch(data, changes, values)
	if !ok {
		if _, checked := (binaryCodec{}).Check(data, nil); checked {
			t.Fatalf("Patch refused data that Check vouches for: %x", data)
		}
		return
	}
	got, err := Binary().Decode(out)
	if err != nil {
		t.Fatalf("patched data does not decode: %v\nbase %x\nout  %x", err, data, out)
	}
	if !sameValues(got, values) || n != len(values) {
		t.Fatalf("patched data decodes to %v (count %d), want %v", got, n, values)
	}
	// Only the keys set need be in values.
	set := make(map[string]any)
	for k, isSet := range changes {
		if isSet {
			set[k] = values[k]
		}
	}
	if again, n2, ok := (binaryCodec{}).Patch(data, changes, set); !ok || n2 != n || !bytes.Equal(again, out) {
		t.Fatalf("Patch with the keys set alone gave %x (count %d, %v), want %x", again, n2, ok, out)
	}
}

// randChanges applies random sets and deletes to a copy of base: values
// changed, values added before, between and after the stored keys, values
// deleted, and keys set then deleted within the request.
func randChanges(r *rand.Rand, base map[string]any) (map[string]bool, map[string]any) {
	values := maps.Clone(base)
	changes := make(map[string]bool)
	keys := slices.Sorted(maps.Keys(base))
	for range r.IntN(6) {
		switch r.IntN(4) {
		case 0:
			if len(keys) > 0 {
				k := keys[r.IntN(len(keys))]
				values[k], changes[k] = randValue(r, 1), true
			}
		case 1:
			k := randString(r)
			values[k], changes[k] = randValue(r, 1), true
		case 2:
			if len(keys) > 0 {
				k := keys[r.IntN(len(keys))]
				if _, in := values[k]; in {
					delete(values, k)
					changes[k] = false
				}
			}
		case 3:
			k := randString(r) + "\x00new"
			values[k], changes[k] = randValue(r, 1), true
			delete(values, k)
			changes[k] = false
		}
	}
	return changes, values
}

func TestBinaryPatchRandom(t *testing.T) {
	t.Parallel()
	r := seeded(t, 0x9a7c)
	patched := 0
	for i := range 2000 {
		base, data := randEncoded(t, r, i)
		changes, values := randChanges(r, base)
		want, err := Binary().Encode(values)
		if err != nil {
			t.Fatalf("case %d: Encode of the changed values: %v", i, err)
		}
		got, n, ok := (binaryCodec{}).Patch(data, changes, values)
		if !ok {
			if _, checked := (binaryCodec{}).Check(data, nil); checked {
				t.Fatalf("case %d: Patch refused data that Check vouches for", i)
			}
			continue
		}
		patched++
		if n != len(values) {
			t.Fatalf("case %d: Patch counts %d values, want %d", i, n, len(values))
		}
		if !bytes.Equal(got, want) && !bytes.Contains(want, []byte("testRecord")) {
			// Values gob writes afresh may differ in bytes, not in what
			// they decode to; the others must be Encode's bytes.
			t.Fatalf("case %d: Patch wrote\n%x\nEncode writes\n%x", i, got, want)
		}
		dec, err := Binary().Decode(got)
		if err != nil || !sameValues(dec, values) {
			t.Fatalf("case %d: patched data decodes to %v, %v; want %v", i, dec, err, values)
		}
	}
	if patched == 0 {
		t.Fatal("no case was patched")
	}
}

func TestBinaryPatchRefuses(t *testing.T) {
	t.Parallel()
	base := tenKeySession()
	data, err := Binary().Encode(base)
	if err != nil {
		t.Fatal(err)
	}
	set := func(k string, v any) (map[string]bool, map[string]any) {
		values := maps.Clone(base)
		values[k] = v
		return map[string]bool{k: true}, values
	}
	changes, values := set("lang", "fr-FR")
	if _, _, ok := (binaryCodec{}).Patch(data, changes, values); !ok {
		t.Fatal("Patch refused a plain change")
	}
	unordered := bytes.Clone(data)
	i := bytes.Index(unordered, []byte("csrf"))
	unordered[i] = 'z' // the first key now sorts after the second
	chanValue := make(chan int)
	for _, c := range []struct {
		name    string
		data    []byte
		changes map[string]bool
		values  map[string]any
	}{
		{"empty base", nil, changes, values},
		{"truncated base", data[:len(data)-1], changes, values},
		{"trailing bytes", append(bytes.Clone(data), 0), changes, values},
		{"wrong version", append([]byte{0xB2}, data[1:]...), changes, values},
		{"keys out of order", unordered, changes, values},
		{"set key missing from values", data, map[string]bool{"absent": true}, base},
		{"unsupported value", data, map[string]bool{"c": true}, map[string]any{"c": chanValue}},
		{"gob value in base", mustEncode(t, map[string]any{"p": testPoint{X: 1}}), changes, values},
	} {
		if out, _, ok := (binaryCodec{}).Patch(c.data, c.changes, c.values); ok {
			t.Errorf("%s: Patch gave %x", c.name, out)
		}
	}
}

func mustEncode(t *testing.T, values map[string]any) []byte {
	t.Helper()
	data, err := Binary().Encode(values)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBinaryPatchAllocs(t *testing.T) {
	base := tenKeySession()
	data := mustEncode(t, base)
	values := maps.Clone(base)
	values["user_id"] = int64(4_815_162_343)
	changes := map[string]bool{"user_id": true}
	if _, _, ok := (binaryCodec{}).Patch(data, changes, values); !ok {
		t.Fatal("not patched")
	}
	// Only the result is allocated. Measured on one encoder, as Patch
	// takes from its pool: under the race detector sync.Pool drops a
	// quarter of what is put back, so through the pool the count would
	// depend on chance.
	e := encoderPool.Get().(*encoder)
	if n := testing.AllocsPerRun(100, func() { e.patch(data, changes, values) }); n != 1 {
		t.Fatalf("Patch allocates %v times, want 1", n)
	}
}
