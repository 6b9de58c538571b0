package session

import (
	"context"
	"errors"
	"testing"
	"unsafe"

	"github.com/visitsession/visitsession/internal/codec"
)

// faultyCodec accepts data in Check that its Decode then refuses, and
// fails every Lookup: a codec fault that the session must survive.
type faultyCodec struct{ codec.Codec }

func (faultyCodec) Check([]byte, []uint32) (int, bool) { return 1, true }

func (faultyCodec) Lookup([]byte, []uint32, string) (any, bool, error) {
	return nil, false, codec.ErrCorrupt
}

func (faultyCodec) Decode([]byte) (map[string]any, error) { return nil, codec.ErrCorrupt }

// TestCheckedDataThatDoesNotDecode checks the outcome of a codec whose
// check accepted data that does not decode: reads give nothing, the
// session reports ErrCorrupt as a load of undecodable data does, counts
// a decode error, and stays writable, so that a save replaces the data.
func TestCheckedDataThatDoesNotDecode(t *testing.T) {
	cfg := defaultConfig()
	cfg.codec = faultyCodec{codec.Binary()}
	var hooked error
	cfg.hooks.OnDecodeError = func(err error) { hooked = err }
	st := &Store{cfg: cfg, indexed: faultyCodec{}}
	sess := &Session{store: st}
	if err := st.bind(sess, "tok", "key", row{data: []byte{1}}); err != nil {
		t.Fatalf("bind of checked data: %v", err)
	}
	if sess.Len() != 1 {
		t.Fatalf("Len = %d before decoding", sess.Len())
	}
	if v := sess.Get("k"); v != nil {
		t.Fatalf("Get = %v", v)
	}
	if err := sess.Err(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Err = %v; want ErrCorrupt", err)
	}
	if sess.Len() != 0 || st.Stats().DecodeErrors != 1 || !errors.Is(hooked, ErrCorrupt) {
		t.Fatalf("Len %d, decode errors %d, hook %v", sess.Len(), st.Stats().DecodeErrors, hooked)
	}
	if err := st.enter(context.Background(), sess, "save", true); err != nil {
		t.Fatalf("a session with undecodable data refuses a write: %v", err)
	}
}

// TestSessionSize holds a Session to the 256-byte allocation size class
// that every load allocates it in; the next class is 288 bytes.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > 256 {
		t.Fatalf("Session is %d bytes, over 256", n)
	}
}
