package codec

import (
	"bytes"
	"encoding/gob"
	"maps"
	"testing"
)

// Run with:
//
//	go test -run='^$' -bench=10Keys -benchmem ./internal/codec/
//
// The GobMap benchmarks are the comparison point: one encoding/gob stream
// of the whole map per session, as a session store without a codec of its
// own does, which sends and parses gob type information on every call.

func BenchmarkBinaryEncode10Keys(b *testing.B) {
	benchmarkEncode10Keys(b, Binary())
}

func BenchmarkBinaryDecode10Keys(b *testing.B) {
	benchmarkDecode10Keys(b, Binary())
}

func BenchmarkJSONEncode10Keys(b *testing.B) {
	benchmarkEncode10Keys(b, JSON())
}

func BenchmarkJSONDecode10Keys(b *testing.B) {
	benchmarkDecode10Keys(b, JSON())
}

func BenchmarkGobMapEncode10Keys(b *testing.B) {
	benchmarkEncode10Keys(b, gobMap{})
}

func BenchmarkGobMapDecode10Keys(b *testing.B) {
	benchmarkDecode10Keys(b, gobMap{})
}

func benchmarkEncode10Keys(b *testing.B, c Codec) {
	values := tenKeySession()
	data, err := c.Encode(values)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Encode(values); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "stored-bytes")
}

func benchmarkDecode10Keys(b *testing.B, c Codec) {
	data, err := c.Encode(tenKeySession())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "stored-bytes")
}

// gobMap encodes the whole map with one encoding/gob stream.
type gobMap struct{}

func (gobMap) Name() string { return "gob" }

func (gobMap) Encode(values map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(values); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (gobMap) Decode(data []byte) (map[string]any, error) {
	var values map[string]any
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&values); err != nil {
		return nil, err
	}
	return values, nil
}

func BenchmarkBinaryCheck10Keys(b *testing.B) {
	data, err := Binary().Encode(tenKeySession())
	if err != nil {
		b.Fatal(err)
	}
	index := make([]uint32, 16)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := (binaryCodec{}).Check(data, index); !ok {
			b.Fatal("not vouched for")
		}
	}
}

func BenchmarkBinaryLookupLastOf10Keys(b *testing.B) {
	data, err := Binary().Encode(tenKeySession())
	if err != nil {
		b.Fatal(err)
	}
	index := make([]uint32, 16)
	if _, ok := (binaryCodec{}).Check(data, index); !ok {
		b.Fatal("not vouched for")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := (binaryCodec{}).Lookup(data, index, "user_id"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkBinaryPatch10Keys writes the data of a ten-key session of which
// one value changed, from its stored data: what a save of that change
// encodes, beside BenchmarkBinaryEncode10Keys.
func BenchmarkBinaryPatch10Keys(b *testing.B) {
	base := tenKeySession()
	data, err := Binary().Encode(base)
	if err != nil {
		b.Fatal(err)
	}
	values := maps.Clone(base)
	values["user_id"] = int64(4_815_162_343)
	changes := map[string]bool{"user_id": true}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := (binaryCodec{}).Patch(data, changes, values); !ok {
			b.Fatal("not patched")
		}
	}
}
