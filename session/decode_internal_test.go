package session

import (
	"context"
	"errors"
	"testing"
	"unsafe"

	"github.com/visitsession/visitsession/internal/codec"
)

// faultyCodec decodes no data and fails every Lookup; with vouches set,
// its Check accepts every data all the same (as one value): codec faults
// that the session must survive.
type faultyCodec struct {
	codec.Codec
	vouches bool
}

func (c faultyCodec) Check([]byte, []uint32) (int, bool) {
	if c.vouches {
		return 1, true
	}
	return 0, false
}

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
	cfg.codec = faultyCodec{codec.Binary(), true}
	var hooked error
	cfg.hooks.OnDecodeError = func(err error) { hooked = err }
	st := &Store{cfg: cfg, indexed: faultyCodec{vouches: true}}
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

// TestWrittenDataThatDoesNotDecode writes the changes of a session that
// reads its values from its loaded data, with a codec that then can
// neither check nor decode the written data: the session keeps the values
// it set, no longer reads from any data, and reports ErrCorrupt.
func TestWrittenDataThatDoesNotDecode(t *testing.T) {
	cfg := defaultConfig()
	cfg.codec = faultyCodec{Codec: codec.Binary()}
	st := &Store{cfg: cfg, indexed: faultyCodec{}}
	sess := &Session{store: st, raw: []byte{1}, rawLen: 1}
	sess.Set("k", "v")
	if !sess.rawStands() {
		t.Fatal("Set decoded the loaded data")
	}
	sess.wrote([]byte{2})
	if sess.rawStands() || sess.raw != nil || sess.Changed() {
		t.Fatalf("after the write: reads from data %v, raw %v, changed %v", sess.rawStands(), sess.raw, sess.Changed())
	}
	if got := sess.GetString("k"); got != "v" {
		t.Fatalf("k = %q after the write", got)
	}
	if err := sess.Err(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Err = %v; want ErrCorrupt", err)
	}
}
