package session

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/visitsession/visitsession/visit"
)

// TestForwardSealing checks the data of a forward row: the old token opens
// it to the new token; any other token opens it to something else; the
// data holds neither the new token nor its bytes; data of another shape
// is no forward.
func TestForwardSealing(t *testing.T) {
	for range 100 {
		oldTok, newTok := visit.NewToken(), visit.NewToken()
		data := sealForward(oldTok, newTok)
		if got, ok := openForward(oldTok, data); !ok || got != newTok {
			t.Fatalf("the old token opens the forward to %q, %v; want %q", got, ok, newTok)
		}
		if got, ok := openForward(visit.NewToken(), data); !ok || got == newTok {
			t.Fatalf("another token opened the forward to the new token")
		}
		raw, _ := base64.RawURLEncoding.DecodeString(newTok)
		if bytes.Contains(data, []byte(newTok)) || bytes.Contains(data, raw) {
			t.Fatal("the forward's data holds the new token")
		}
		for _, bad := range [][]byte{nil, data[:len(data)-1], append(bytes.Clone(data), 0), append([]byte("xxxx\x01"), data[len(forwardMagic):]...)} {
			if _, ok := openForward(oldTok, bad); ok {
				t.Fatalf("%q opened as a forward", bad)
			}
		}
	}
}
