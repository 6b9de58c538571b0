package codec

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// Seed corpora live in testdata/fuzz; these add valid encodings of the
// current format.

func FuzzBinaryDecode(f *testing.F) {
	for _, s := range fuzzSeedSessions() {
		data, err := Binary().Encode(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, Binary(), data)
		checkIndexed(t, data)
		checkPatched(t, data)
	})
}

func FuzzJSONDecode(f *testing.F) {
	for _, s := range fuzzSeedSessions() {
		data, err := JSON().Encode(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, JSON(), data)
	})
}

// checkDecode decodes arbitrary data: it must fail with ErrCorrupt, or give
// values that encode, decode to the same values and encode to the same
// bytes again.
func checkDecode(t *testing.T, c Codec, data []byte) {
	m, err := c.Decode(data)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Decode error %v does not wrap ErrCorrupt", err)
		}
		if m != nil {
			t.Fatalf("Decode returned values with an error")
		}
		return
	}
	if m == nil {
		t.Fatal("Decode returned a nil map without an error")
	}
	enc, err := c.Encode(m)
	if err != nil {
		t.Fatalf("Encode of decoded values: %v", err)
	}
	m2, err := c.Decode(enc)
	if err != nil {
		t.Fatalf("Decode of re-encoded values: %v", err)
	}
	if !sameValues(m, m2) {
		t.Fatalf("values changed in a round trip:\n%#v\n%#v", m, m2)
	}
	enc2, err := c.Encode(m2)
	if err != nil {
		t.Fatalf("second Encode: %v", err)
	}
	if !bytes.Equal(enc, enc2) {
		t.Fatalf("encoding is not stable:\n%q\n%q", enc, enc2)
	}
}

func fuzzSeedSessions() []map[string]any {
	return []map[string]any{
		{},
		tenKeySession(),
		{
			"n": nil, "b": []byte("x"), "i8": int8(-1), "i16": int16(-300), "i32": int32(70000),
			"u": uint(1), "u8": uint8(2), "u16": uint16(3), "u32": uint32(4), "u64": uint64(5),
			"f32": float32(1.5), "d": time.Second, "ints": []int{1, -1},
			"t": time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600)),
			"m": map[string]string{"k": "v"},
			"a": []any{1, "s", map[string]any{"deep": []any{nil}}},
		},
		{"gob": testPoint{X: 1, Y: 2, Label: "p"}, "role": testRole("admin")},
	}
}
