package dialect

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestMySQLTimeAsTimePackage holds the direct DATETIME formatting and
// parsing to what the time package does with the same layouts: equal
// strings, equal instants, and an error where it gives one.
func TestMySQLTimeAsTimePackage(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0xda7e))
	min, max := time.Date(-50, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(10050, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	zone := time.FixedZone("X", -7*3600)
	for range 20000 {
		in := time.Unix(min+r.Int64N(max-min), r.Int64N(1e9))
		if r.IntN(2) == 0 {
			in = in.In(zone)
		}
		got, want := formatMySQLTime(in), in.UTC().Format(mysqlTimeLayout)
		if got != want {
			t.Fatalf("formatMySQLTime(%v) = %q, want %q", in, got, want)
		}
		samePars(t, []byte(want))
		samePars(t, []byte(want[:19]))
		samePars(t, []byte(want[:19+r.IntN(7)]))
		// Mutations: any byte changed, the text cut or lengthened.
		b := []byte(want)
		b[r.IntN(len(b))] = byte(r.IntN(256))
		samePars(t, b)
		samePars(t, append([]byte(want), "0123"[:r.IntN(5)]...))
	}
	for _, s := range []string{
		"2026-02-29 00:00:00", "2024-02-29 23:59:59.999999999", "2026-04-31 00:00:00", "2026-13-01 00:00:00",
		"2026-00-10 00:00:00", "2026-01-00 00:00:00", "2026-01-01 24:00:00", "2026-01-01 23:60:00",
		"2026-01-01 23:59:60", "0000-01-01 00:00:00", "9999-12-31 23:59:59.999999", "2026-01-01 00:00:00.",
		"2026-01-01 00:00:00,5", "2026-01-01 00:00:00.1234567890", "2026-01-01 1:00:00", "+026-01-01 00:00:00",
		"2026-01-01T00:00:00", "",
	} {
		samePars(t, []byte(s))
	}
}

// samePars requires parseMySQLTime to agree with time.ParseInLocation.
func samePars(t *testing.T, b []byte) {
	t.Helper()
	got, gerr := parseMySQLTime(b)
	want, werr := time.ParseInLocation("2006-01-02 15:04:05.999999999", string(b), time.UTC)
	if (gerr != nil) != (werr != nil) || !got.Equal(want) || got.Location() != time.UTC {
		t.Fatalf("parseMySQLTime(%q) = %v, %v; time.ParseInLocation gives %v, %v", b, got, gerr, want, werr)
	}
}

func BenchmarkMySQLTime(b *testing.B) {
	at := time.Date(2026, 11, 27, 13, 4, 5, 123456789, time.UTC)
	lit := []byte(formatMySQLTime(at))
	b.Run("format", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = formatMySQLTime(at)
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseMySQLTime(lit); err != nil {
				b.Fatal(err)
			}
		}
	})
}
