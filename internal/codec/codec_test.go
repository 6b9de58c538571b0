package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNames(t *testing.T) {
	t.Parallel()
	if got := Binary().Name(); got != "binary" {
		t.Errorf("Binary().Name() = %q", got)
	}
	if got := JSON().Name(); got != "json" {
		t.Errorf("JSON().Name() = %q", got)
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	t.Parallel()
	est := time.FixedZone("EST", -5*60*60)
	lmt := time.FixedZone("LMT", -(4*3600 + 56*60 + 2)) // New York's local mean time
	cases := []struct {
		name  string
		value any
	}{
		{"nil", nil},
		{"string", "hello, 世界"},
		{"empty string", ""},
		{"invalid utf8 string", "\xff\xfe"},
		{"long string", strings.Repeat("x", 1000)},
		{"bytes", []byte{0, 1, 2, 0xff}},
		{"empty bytes", []byte{}},
		{"nil bytes", []byte(nil)},
		{"false", false},
		{"true", true},
		{"int", 42},
		{"int negative", -42},
		{"int max", math.MaxInt},
		{"int min", math.MinInt},
		{"int8", int8(-128)},
		{"int8 max", int8(127)},
		{"int16", int16(math.MinInt16)},
		{"int16 max", int16(math.MaxInt16)},
		{"int32", int32(math.MinInt32)},
		{"int32 max", int32(math.MaxInt32)},
		{"int64", int64(math.MinInt64)},
		{"int64 max", int64(math.MaxInt64)},
		{"uint", uint(math.MaxUint)},
		{"uint8", uint8(255)},
		{"uint16", uint16(math.MaxUint16)},
		{"uint32", uint32(math.MaxUint32)},
		{"uint64", uint64(math.MaxUint64)},
		{"uint64 zero", uint64(0)},
		{"float32", float32(3.25)},
		{"float32 NaN", float32(math.NaN())},
		{"float32 -Inf", float32(math.Inf(-1))},
		{"float64", 2.718281828459045},
		{"float64 negative zero", math.Copysign(0, -1)},
		{"float64 NaN", math.NaN()},
		{"float64 NaN payload", math.Float64frombits(0x7ff8_0000_dead_beef)},
		{"float64 +Inf", math.Inf(1)},
		{"float64 smallest", math.SmallestNonzeroFloat64},
		{"time UTC", time.Date(2025, 3, 14, 15, 9, 26, 535_897_932, time.UTC)},
		{"time zero", time.Time{}},
		{"time fixed zone", time.Date(2024, 12, 31, 23, 59, 59, 1, est)},
		{"time unnamed zone", time.Date(2024, 6, 1, 0, 0, 0, 0, time.FixedZone("", 5*3600+30*60))},
		{"time negative seconds offset", time.Date(1850, 1, 1, 0, 0, 0, 0, lmt)},
		{"time minus one minute offset", time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("", -60))},
		{"time local", time.Date(2023, 7, 4, 12, 0, 0, 0, time.Local)},
		{"time now", time.Now()},
		{"time far future", time.Unix(math.MaxInt64, 999_999_999).UTC()},
		{"time far past", time.Unix(math.MinInt64, 0).UTC()},
		{"time max", time.Unix(1<<63-1-62135596800, 999_999_999)},
		{"duration", 90 * time.Minute},
		{"duration negative", -time.Nanosecond},
		{"duration max", time.Duration(math.MaxInt64)},
		{"strings", []string{"a", "", "ccc"}},
		{"empty strings", []string{}},
		{"nil strings", []string(nil)},
		{"ints", []int{0, -1, math.MaxInt, math.MinInt}},
		{"empty ints", []int{}},
		{"nil ints", []int(nil)},
		{"anys", []any{1, "two", 3.0, nil, []any{int8(4)}, map[string]any{"five": uint(5)}}},
		{"empty anys", []any{}},
		{"nil anys", []any(nil)},
		{"string map", map[string]string{"b": "2", "a": "1", "": ""}},
		{"empty string map", map[string]string{}},
		{"nil string map", map[string]string(nil)},
		{"any map", map[string]any{"n": 1, "s": "x", "t": time.Unix(0, 0).UTC(), "m": map[string]any{"deep": []string{"y"}}}},
		{"empty any map", map[string]any{}},
		{"nil any map", map[string]any(nil)},
		{"gob struct", testPoint{X: 1, Y: -2, Label: "p"}},
		{"gob pointer", &testRecord{ID: 7, Tags: []string{"t"}, When: time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)}},
		{"gob named string", testRole("admin")},
		{"gob complex", complex(1, -2)},
		{"gob float slice", []float64{1.5, math.Inf(1)}},
		{"gob inside anys", []any{testPoint{X: 3}, map[string]any{"p": testPoint{Y: 4}}}},
	}
	c := Binary()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := map[string]any{"k": tc.value}
			data, err := c.Encode(in)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			out, err := c.Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !sameValues(in, out) {
				t.Fatalf("round trip: got %#v (%T), want %#v (%T)", out["k"], out["k"], tc.value, tc.value)
			}
		})
	}
}

func TestBinaryTimeLocation(t *testing.T) {
	t.Parallel()
	c := Binary()
	check := func(t *testing.T, in time.Time, wantLoc *time.Location) {
		t.Helper()
		data, err := c.Encode(map[string]any{"t": in})
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		got := m["t"].(time.Time)
		if !got.Equal(in) || got.Format(time.RFC3339Nano+" MST") != in.Format(time.RFC3339Nano+" MST") {
			t.Errorf("got %v, want %v", got, in)
		}
		if wantLoc != nil && got.Location() != wantLoc {
			t.Errorf("location %v, want %v", got.Location(), wantLoc)
		}
	}
	t.Run("UTC stays UTC", func(t *testing.T) {
		check(t, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.UTC)
	})
	t.Run("Local stays Local", func(t *testing.T) {
		check(t, time.Date(2025, 1, 1, 0, 0, 0, 0, time.Local), time.Local)
	})
	t.Run("monotonic reading dropped", func(t *testing.T) {
		now := time.Now()
		data, err := c.Encode(map[string]any{"t": now})
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		got := m["t"].(time.Time)
		if got != now.Round(0) {
			t.Errorf("got %#v, want %#v", got, now.Round(0))
		}
	})
	t.Run("fixed zone keeps name and offset", func(t *testing.T) {
		check(t, time.Date(2025, 1, 1, 0, 0, 0, 0, time.FixedZone("XST", 7*3600+17)), nil)
	})
}

func TestBinaryRoundTripTypical(t *testing.T) {
	t.Parallel()
	c := Binary()
	for name, in := range map[string]map[string]any{
		"ten keys": tenKeySession(),
		"nil":      nil,
		"empty":    {},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := c.Encode(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if out == nil {
				t.Fatal("Decode returned a nil map")
			}
			if in == nil {
				in = map[string]any{}
			}
			if !sameValues(in, out) {
				t.Fatalf("got %v, want %v", out, in)
			}
		})
	}
}

func TestBinaryGolden(t *testing.T) {
	t.Parallel()
	// The stored format must not change without a new version byte.
	in := map[string]any{
		"b": true,
		"a": int64(-2),
		"s": []string{"x"},
		"t": time.Unix(1, 5).UTC(),
		"n": nil,
	}
	want := "b1" + "05" +
		"0161" + "09" + "03" + // "a": int64 -2
		"0162" + "02" + // "b": true
		"016e" + "00" + // "n": nil
		"0173" + "13" + "02" + "0178" + // "s": []string{"x"}
		"0174" + "11" + "02" + "05" + "00" // "t": 1s 5ns UTC
	data, err := Binary().Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(data); got != want {
		t.Errorf("Encode = %s, want %s", got, want)
	}
}

func TestBinaryDeterministic(t *testing.T) {
	t.Parallel()
	in := tenKeySession()
	in["nested"] = map[string]any{"z": 1, "y": map[string]string{"q": "1", "p": "2", "o": "3"}, "x": []any{map[string]any{"c": 1, "b": 2, "a": 3}}}
	first, err := Binary().Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := Binary().Encode(in)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatal("two encodings of the same session differ")
		}
	}
}

func TestBinaryEncodeUnsupported(t *testing.T) {
	t.Parallel()
	type unregistered struct{ A int }
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	cyclicSlice := []any{nil}
	cyclicSlice[0] = cyclicSlice
	cases := []struct {
		name  string
		value any
	}{
		{"unregistered gob type", unregistered{A: 1}},
		{"channel", make(chan int)},
		{"func", func() {}},
		{"nil pointer", (*testRecord)(nil)},
		{"cyclic map", cyclic},
		{"cyclic slice", cyclicSlice},
		{"too deep", nest(maxDepth + 1)},
		{"too many values", make([]int, maxValues)},
		{"gob value too large", testRole(strings.Repeat("x", maxGobValue))},
		{"unsupported inside map", map[string]any{"ok": 1, "bad": unregistered{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Binary().Encode(map[string]any{"the_key": tc.value})
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Encode error = %v, want ErrUnsupported", err)
			}
			if !strings.Contains(err.Error(), `"the_key"`) {
				t.Errorf("error %q does not name the key", err)
			}
		})
	}
}

// nest returns a value that, stored in a session, makes levels levels of
// maps and slices counting the session map.
func nest(levels int) any {
	var v any = "leaf"
	for i := 1; i < levels; i++ {
		if i%2 == 0 {
			v = []any{v}
		} else {
			v = map[string]any{"k": v}
		}
	}
	return v
}

func TestBinaryDepthLimit(t *testing.T) {
	t.Parallel()
	c := Binary()
	data, err := c.Encode(map[string]any{"k": nest(maxDepth)})
	if err != nil {
		t.Fatalf("Encode at the limit: %v", err)
	}
	if _, err := c.Decode(data); err != nil {
		t.Fatalf("Decode at the limit: %v", err)
	}

	// One level more, written by hand: Encode refuses it.
	deep := []byte{formatV1, 1, 1, 'k'}
	for range maxDepth {
		deep = append(deep, tagAnys, 2)
	}
	deep = append(deep, tagNil)
	if _, err := c.Decode(deep); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Decode too deep: %v, want ErrCorrupt", err)
	}
}

// session builds an encoding: the version, the count and the given entries.
func session(count uint64, entries ...[]byte) []byte {
	b := binary.AppendUvarint([]byte{formatV1}, count)
	for _, e := range entries {
		b = append(b, e...)
	}
	return b
}

// entry builds one entry with a one-letter key.
func entry(tag byte, payload ...byte) []byte {
	return append([]byte{1, 'k', tag}, payload...)
}

func uvarint(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func TestBinaryDecodeCorrupt(t *testing.T) {
	t.Parallel()
	valid, err := Binary().Encode(map[string]any{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	var gobMap bytes.Buffer
	if err := gob.NewEncoder(&gobMap).Encode(map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	huge := uvarint(1 << 62)
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"version only", []byte{formatV1}},
		{"unknown version", append([]byte{formatV1 + 1}, valid[1:]...)},
		{"plain gob", gobMap.Bytes()},
		{"json", []byte(`{"k":"v"}`)},
		{"trailing byte", append(bytes.Clone(valid), 0)},
		{"trailing entry", session(1, entry(tagNil), entry(tagNil))},
		{"unknown tag", session(1, entry(tagGob+1))},
		{"tag 0xff", session(1, entry(0xff))},
		{"huge count", session(1<<62, entry(tagNil))},
		{"count over input", session(3, entry(tagNil))},
		{"bad varint", append([]byte{formatV1}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"huge key length", append([]byte{formatV1, 1}, append(huge, 'k', tagNil)...)},
		{"huge string", session(1, entry(tagString, huge...))},
		{"huge bytes", session(1, entry(tagBytes, huge...))},
		{"max uint64 bytes", session(1, entry(tagBytes, uvarint(math.MaxUint64)...))},
		{"huge strings", session(1, entry(tagStrings, huge...))},
		{"huge ints", session(1, entry(tagInts, huge...))},
		{"huge anys", session(1, entry(tagAnys, huge...))},
		{"huge string map", session(1, entry(tagStringMap, huge...))},
		{"huge any map", session(1, entry(tagAnyMap, huge...))},
		{"huge gob", session(1, entry(tagGob, huge...))},
		{"gob over limit", session(1, entry(tagGob, append(uvarint(maxGobValue+1), make([]byte, maxGobValue+1)...)...))},
		{"duplicate key", session(2, entry(tagNil), entry(tagTrue))},
		{"duplicate nested key", session(1, entry(tagAnyMap, 3, 1, 'a', tagNil, 1, 'a', tagNil))},
		{"duplicate string map key", session(1, entry(tagStringMap, 3, 1, 'a', 0, 1, 'a', 0))},
		{"int16 out of range", session(1, entry(tagInt16, binary.AppendVarint(nil, math.MaxInt16+1)...))},
		{"int32 out of range", session(1, entry(tagInt32, binary.AppendVarint(nil, math.MinInt32-1)...))},
		{"uint16 out of range", session(1, entry(tagUint16, uvarint(math.MaxUint16+1)...))},
		{"uint32 out of range", session(1, entry(tagUint32, uvarint(math.MaxUint32+1)...))},
		{"varint too long", session(1, entry(tagInt64, bytes.Repeat([]byte{0x80}, 10)...))},
		{"truncated float64", session(1, entry(tagFloat64, 1, 2, 3))},
		{"truncated float32", session(1, entry(tagFloat32, 1))},
		{"time nanoseconds out of range", session(1, entry(tagTime, append(append([]byte{0}, uvarint(1e9)...), zoneUTC)...))},
		{"time unknown zone", session(1, entry(tagTime, 0, 0, 7))},
		{"time offset out of range", session(1, entry(tagTime, append([]byte{0, 0, zoneFixed}, append(binary.AppendVarint(nil, 1<<40), 0)...)...))},
		{"gob garbage", session(1, entry(tagGob, 3, 1, 2, 3))},
		{"gob unregistered name", session(1, entry(tagGob, gobBlobNamed(t, "no.such.Type")...))},
		{"gob trailing bytes", session(1, entry(tagGob, gobBlobTrailing(t)...))},
		{"too many values", session(1, entry(tagInts, append(uvarint(maxValues+2), make([]byte, maxValues+1)...)...))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := Binary().Decode(tc.data)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode = %v, %v; want ErrCorrupt", m, err)
			}
			if m != nil {
				t.Errorf("Decode returned a map with an error")
			}
			if _, ok := (binaryCodec{}).Check(tc.data, make([]uint32, 4)); ok {
				t.Errorf("Check vouches for it")
			}
		})
	}
}

// gobBlobNamed returns a gob blob, after its length, of a testRole whose
// registered name is replaced by name.
func gobBlobNamed(t *testing.T, name string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var v any = testRole("x")
	if err := gob.NewEncoder(&buf).Encode(&v); err != nil {
		t.Fatal(err)
	}
	old := "codec.testRole"
	b := bytes.Replace(buf.Bytes(), append([]byte{byte(len(old))}, old...), append([]byte{byte(len(name))}, name...), 1)
	// The first message holds the name; fix its length.
	b[0] = byte(int(b[0]) + len(name) - len(old))
	return append(uvarint(uint64(len(b))), b...)
}

func gobBlobTrailing(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	var v any = testPoint{X: 1}
	if err := gob.NewEncoder(&buf).Encode(&v); err != nil {
		t.Fatal(err)
	}
	b := append(buf.Bytes(), 0)
	return append(uvarint(uint64(len(b))), b...)
}

func TestBinaryDecodeTruncated(t *testing.T) {
	t.Parallel()
	in := tenKeySession()
	in["all"] = []any{nil, "s", []byte("b"), false, 1, int8(2), int16(3), int32(4), int64(5), uint(6), uint8(7),
		uint16(8), uint32(9), uint64(10), float32(11), 12.0, time.Unix(13, 0).In(time.FixedZone("Z", 3600)), 14 * time.Second,
		[]string{"15"}, []int{16}, []any{17}, map[string]string{"18": "18"}, map[string]any{"19": 19}, testPoint{X: 20}}
	data, err := Binary().Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Binary().Decode(data); err != nil {
		t.Fatal(err)
	}
	for n := range len(data) {
		m, err := Binary().Decode(data[:n])
		if !errors.Is(err, ErrCorrupt) || m != nil {
			t.Fatalf("Decode of the first %d of %d bytes = %v, %v; want ErrCorrupt", n, len(data), m, err)
		}
	}
}

func TestBinaryDecodeBoundedAllocation(t *testing.T) {
	// Not parallel: it reads the process-wide allocation counter.
	inputs := map[string][]byte{
		"huge count":      session(1<<62, entry(tagNil)),
		"huge string":     session(1, entry(tagString, uvarint(1<<40)...)),
		"huge bytes":      session(1, entry(tagBytes, uvarint(1<<40)...)),
		"huge anys":       session(1, entry(tagAnys, uvarint(1<<40)...)),
		"huge any map":    session(1, entry(tagAnyMap, uvarint(1<<40)...)),
		"huge string map": session(1, entry(tagStringMap, uvarint(1<<40)...)),
		"huge ints":       session(1, entry(tagInts, uvarint(1<<40)...)),
		"huge gob":        session(1, entry(tagGob, uvarint(1<<20)...)),
	}
	for name, data := range inputs {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Binary().Decode(data)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
			t.Errorf("%s: %d-byte input allocated %d bytes", name, len(data), got)
		}
	}
}

func TestBinaryDecodeDoesNotKeepInput(t *testing.T) {
	t.Parallel()
	data, err := Binary().Encode(map[string]any{"s": "value", "b": []byte("bytes")})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Binary().Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 0
	}
	if m["s"] != "value" || string(m["b"].([]byte)) != "bytes" {
		t.Fatalf("decoded values changed with the input: %v", m)
	}
}

func TestBinaryDecodeAllocs(t *testing.T) {
	data, err := Binary().Encode(tenKeySession())
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Binary().Decode(data); err != nil {
			t.Fatal(err)
		}
	})
	// The map, one string for all keys and strings, one []string, and
	// the boxes of the string, int64, float64, time and slice values.
	if allocs > 16 {
		t.Errorf("Decode of ten keys: %v allocations, want at most 16", allocs)
	}
}

func TestBinaryConcurrent(t *testing.T) {
	t.Parallel()
	c := Binary()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				in := tenKeySession()
				in["g"], in["i"] = g, i
				data, err := c.Encode(in)
				if err != nil {
					t.Error(err)
					return
				}
				out, err := c.Decode(data)
				if err != nil {
					t.Error(err)
					return
				}
				if !sameValues(in, out) {
					t.Errorf("goroutine %d: round trip differs", g)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestBinaryRoundTripRandom checks random sessions of every supported type,
// nested at random, against the round trip and the determinism of Encode.
func TestBinaryRoundTripRandom(t *testing.T) {
	t.Parallel()
	r := seeded(t, 0x5e55)
	c := Binary()
	for i := range 2000 {
		in, data := randEncoded(t, r, i)
		out, err := c.Decode(data)
		if err != nil {
			t.Fatalf("case %d: Decode: %v", i, err)
		}
		if !sameValues(in, out) {
			t.Fatalf("case %d: round trip: got %#v, want %#v", i, out, in)
		}
		again, err := c.Encode(out)
		if err != nil {
			t.Fatalf("case %d: Encode again: %v", i, err)
		}
		if !bytes.Equal(data, again) {
			t.Fatalf("case %d: re-encoding differs", i)
		}
	}
}

// seeded returns a random source seeded from the clock, logging the seed
// so that a failure can be replayed.
func seeded(t *testing.T, stream uint64) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, stream))
}

// randEncoded returns a random session (randSession) and its binary
// encoding, for random case i.
func randEncoded(t *testing.T, r *rand.Rand, i int) (map[string]any, []byte) {
	t.Helper()
	in := randSession(r)
	data, err := Binary().Encode(in)
	if err != nil {
		t.Fatalf("case %d: Encode: %v", i, err)
	}
	return in, data
}

// randSession returns up to eleven random values under random keys.
func randSession(r *rand.Rand) map[string]any {
	in := make(map[string]any)
	for range r.IntN(12) {
		in[randString(r)] = randValue(r, 1)
	}
	return in
}

func randString(r *rand.Rand) string {
	b := make([]byte, r.IntN(8))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return string(b)
}

func randValue(r *rand.Rand, depth int) any {
	kinds := 27
	if depth >= maxDepth-1 {
		kinds = 22 // no containers that nest
	}
	switch r.IntN(kinds) {
	case 0:
		return nil
	case 1:
		return randString(r)
	case 2:
		if r.IntN(4) == 0 {
			return []byte(nil)
		}
		return []byte(randString(r))
	case 3:
		return r.IntN(2) == 0
	case 4:
		return int(r.Uint64())
	case 5:
		return int8(r.Uint32())
	case 6:
		return int16(r.Uint32())
	case 7:
		return int32(r.Uint32())
	case 8:
		return int64(r.Uint64() >> r.UintN(64))
	case 9:
		return uint(r.Uint64())
	case 10:
		return uint8(r.Uint32())
	case 11:
		return uint16(r.Uint32())
	case 12:
		return uint32(r.Uint32())
	case 13:
		return r.Uint64() >> r.UintN(64)
	case 14:
		return math.Float32frombits(r.Uint32())
	case 15:
		return math.Float64frombits(r.Uint64())
	case 16:
		t := time.Unix(int64(r.Uint64()), r.Int64N(1e9))
		switch r.IntN(3) {
		case 0:
			return t.UTC()
		case 1:
			return t.In(time.FixedZone(randString(r), r.IntN(100_000)-50_000))
		}
		return t
	case 17:
		return time.Duration(r.Int64())
	case 18:
		if r.IntN(4) == 0 {
			return []string(nil)
		}
		s := make([]string, r.IntN(5))
		for i := range s {
			s[i] = randString(r)
		}
		return s
	case 19:
		if r.IntN(4) == 0 {
			return []int(nil)
		}
		s := make([]int, r.IntN(5))
		for i := range s {
			s[i] = int(r.Uint64() >> r.UintN(64))
		}
		return s
	case 20:
		if r.IntN(4) == 0 {
			return map[string]string(nil)
		}
		m := make(map[string]string)
		for range r.IntN(5) {
			m[randString(r)] = randString(r)
		}
		return m
	case 21:
		return testPoint{X: r.Int(), Y: -r.Int(), Label: randString(r)}
	case 22, 23:
		if r.IntN(4) == 0 {
			return []any(nil)
		}
		s := make([]any, r.IntN(4))
		for i := range s {
			s[i] = randValue(r, depth+1)
		}
		return s
	default:
		if r.IntN(4) == 0 {
			return map[string]any(nil)
		}
		m := make(map[string]any)
		for range r.IntN(4) {
			m[randString(r)] = randValue(r, depth+1)
		}
		return m
	}
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	when := time.Date(2025, 3, 14, 15, 9, 26, 535_897_932, time.FixedZone("", 3600))
	cases := []struct {
		name string
		in   any
		want any
	}{
		{"nil", nil, nil},
		{"string", "héllo <&>", "héllo <&>"},
		{"invalid utf8", "a\xffb", "a\uFFFDb"},
		{"true", true, true},
		{"false", false, false},
		{"int", 42, json.Number("42")},
		{"int64 beyond float64", int64(1<<53 + 1), json.Number("9007199254740993")},
		{"uint64 max", uint64(math.MaxUint64), json.Number("18446744073709551615")},
		{"float64", 1.5, json.Number("1.5")},
		{"float32", float32(0.1), json.Number("0.1")},
		{"number", json.Number("-1e-7"), json.Number("-1e-7")},
		{"bytes", []byte("hi"), "aGk="},
		{"nil bytes", []byte(nil), nil},
		{"time", when, "2025-03-14T15:09:26.535897932+01:00"},
		{"duration", 2 * time.Second, json.Number("2000000000")},
		{"strings", []string{"a", "b"}, []any{"a", "b"}},
		{"ints", []int{1, 2}, []any{json.Number("1"), json.Number("2")}},
		{"anys", []any{"x", 1, nil, true}, []any{"x", json.Number("1"), nil, true}},
		{"string map", map[string]string{"a": "b"}, map[string]any{"a": "b"}},
		{"any map", map[string]any{"a": map[string]any{"b": []any{}}}, map[string]any{"a": map[string]any{"b": []any{}}}},
		{"struct", testPoint{X: 1, Label: "p"}, map[string]any{"X": json.Number("1"), "Y": json.Number("0"), "Label": "p"}},
	}
	c := JSON()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data, err := c.Encode(map[string]any{"k": tc.in})
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			out, err := c.Decode(data)
			if err != nil {
				t.Fatalf("Decode %s: %v", data, err)
			}
			if want := map[string]any{"k": tc.want}; !sameValues(out, want) {
				t.Fatalf("got %#v, want %#v (stored %s)", out["k"], tc.want, data)
			}
		})
	}
}

func TestJSONNilAndEmpty(t *testing.T) {
	t.Parallel()
	for _, in := range []map[string]any{nil, {}} {
		data, err := JSON().Encode(in)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != "{}" {
			t.Errorf("Encode(%#v) = %s, want {}", in, data)
		}
		out, err := JSON().Decode(data)
		if err != nil || out == nil || len(out) != 0 {
			t.Errorf("Decode(%s) = %#v, %v; want an empty map", data, out, err)
		}
	}
}

func TestJSONEncodeUnsupported(t *testing.T) {
	t.Parallel()
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	for name, v := range map[string]any{
		"channel":           make(chan int),
		"func":              func() {},
		"complex":           complex(1, 2),
		"NaN":               math.NaN(),
		"Inf":               math.Inf(-1),
		"cyclic":            cyclic,
		"invalid number":    json.Number("abc"),
		"failing marshaler": failingMarshaler{},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := JSON().Encode(map[string]any{"k": v})
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Encode = %v, want ErrUnsupported", err)
			}
		})
	}
}

type failingMarshaler struct{}

func (failingMarshaler) MarshalJSON() ([]byte, error) { return nil, errors.New("cannot marshal") }

func TestJSONDecodeCorrupt(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"",
		" ",
		"null",
		"[]",
		`"s"`,
		"1",
		"{",
		`{"a":}`,
		`{"a":1}{"b":2}`,
		`{"a":1} x`,
		`{"a":1},`,
		"\xb1\x00",
	} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			m, err := JSON().Decode([]byte(in))
			if !errors.Is(err, ErrCorrupt) || m != nil {
				t.Fatalf("Decode(%q) = %v, %v; want ErrCorrupt", in, m, err)
			}
		})
	}
}

func TestJSONDecodeWhitespace(t *testing.T) {
	t.Parallel()
	m, err := JSON().Decode([]byte(" \n{\"a\": 1}\n\t"))
	if err != nil {
		t.Fatal(err)
	}
	if m["a"] != json.Number("1") {
		t.Fatalf("got %#v", m)
	}
}
