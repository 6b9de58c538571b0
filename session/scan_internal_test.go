package session

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestScannedData(t *testing.T) {
	src := []byte("stored data")
	var d scannedData
	if err := d.Scan(src); err != nil || !bytes.Equal(d.b, src) {
		t.Fatalf("Scan = %q, %v", d.b, err)
	}
	src[0] = 'X'
	if d.b[0] != 's' {
		t.Fatal("a copying scan kept the driver's slice")
	}
	d.keep = true
	if err := d.Scan(src); err != nil || &d.b[0] != &src[0] {
		t.Fatal("a keeping scan copied the driver's slice")
	}
	if err := d.Scan("text"); err != nil || string(d.b) != "text" {
		t.Fatalf("Scan(string) = %q, %v", d.b, err)
	}
	if err := d.Scan(nil); err != nil || d.b != nil {
		t.Fatalf("Scan(nil) = %q, %v", d.b, err)
	}
	if err := d.Scan(int64(1)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Scan(int64) error = %v, want ErrCorrupt", err)
	}
}

func TestScannedInt64(t *testing.T) {
	for _, c := range []struct {
		src  any
		want int64
		ok   bool
	}{
		{int64(7), 7, true},
		{int32(-3), -3, true},
		{uint64(9), 9, true},
		{[]byte("42"), 42, true},
		{"-5", -5, true},
		{uint64(math.MaxUint64), 0, false},
		{[]byte("4x"), 0, false},
		{"", 0, false},
		{nil, 0, false},
		{1.5, 0, false},
	} {
		got, err := scannedInt64(c.src)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("scannedInt64(%#v) = %d, %v; want %d, ok %v", c.src, got, err, c.want, c.ok)
		}
	}
}
