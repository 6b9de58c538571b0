package session

import (
	"context"
	"errors"
	"fmt"
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
// it set, no longer reads from any data, and reports ErrCorrupt. Data the
// save did not patch is checked by the save; patched data (the save
// counted its values) at the first read.
func TestWrittenDataThatDoesNotDecode(t *testing.T) {
	for _, patched := range []int{-1, 1} {
		t.Run(fmt.Sprintf("patched=%d", patched), func(t *testing.T) {
			cfg := defaultConfig()
			cfg.codec = faultyCodec{Codec: codec.Binary()}
			st := &Store{cfg: cfg, indexed: faultyCodec{}}
			sess := &Session{store: st, raw: []byte{1}, rawLen: 1}
			sess.Set("k", "v")
			if !sess.rawStands() {
				t.Fatal("Set decoded the loaded data")
			}
			sess.wrote([]byte{2}, patched)
			if deferred := patched >= 0; sess.rawStands() != deferred || sess.Changed() {
				t.Fatalf("after the write: reads from data %v, changed %v", sess.rawStands(), sess.Changed())
			}
			if got := sess.GetString("k"); got != "v" {
				t.Fatalf("k = %q after the write", got)
			}
			if sess.rawStands() || sess.raw != nil {
				t.Fatalf("after a read: reads from data %v, raw %v", sess.rawStands(), sess.raw)
			}
			if err := sess.Err(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Err = %v; want ErrCorrupt", err)
			}
		})
	}
}

// countingIndexed is the binary codec's Check and Lookup, counting the
// checks; with refuse set, Check vouches for nothing, as for data holding
// a value only decoding can vouch for.
type countingIndexed struct {
	codec.Indexed
	checks int
	refuse bool
}

func (c *countingIndexed) Check(data []byte, index []uint32) (int, bool) {
	c.checks++
	if c.refuse {
		return 0, false
	}
	return c.Indexed.Check(data, index)
}

// patchedSession returns a session bound to the stored encoding of three
// values, with its store's Check counted by ix.
func patchedSession(t *testing.T, ix *countingIndexed) (*Store, *Session) {
	t.Helper()
	ix.Indexed = codec.Binary().(codec.Indexed)
	st := &Store{cfg: defaultConfig(), indexed: ix, patcher: codec.Binary().(codec.Patcher)}
	data, err := codec.Binary().Encode(map[string]any{"a": "1", "b": "2", "c": "3"})
	if err != nil {
		t.Fatal(err)
	}
	sess := &Session{store: st}
	if err := st.bind(sess, "tok", "key", row{data: data}); err != nil {
		t.Fatal(err)
	}
	return st, sess
}

// saveInMemory writes the session's changes as a save would, without a
// database.
func (s *Store) saveInMemory(t *testing.T, sess *Session) {
	t.Helper()
	data, n, err := s.encodeSession(sess)
	if err != nil {
		t.Fatal(err)
	}
	sess.wrote(data, n)
}

// TestPatchedDataCheckedOnFirstRead: data a save patched is not walked
// again by the save; the first read after it checks and indexes it once,
// and reads, Len and Delete then answer from it.
func TestPatchedDataCheckedOnFirstRead(t *testing.T) {
	ix := new(countingIndexed)
	st, sess := patchedSession(t, ix)
	for i := range 3 {
		sess.Set("b", i)
		st.saveInMemory(t, sess)
	}
	if ix.checks != 1 || !sess.rawStands() || !sess.rawPatched {
		t.Fatalf("after three patching saves: %d checks (want the load's 1), reads from data %v, patched %v", ix.checks, sess.rawStands(), sess.rawPatched)
	}
	if got := sess.GetInt("b"); got != 2 {
		t.Fatalf("b = %d after the saves", got)
	}
	if got := sess.GetString("a"); got != "1" || sess.Len() != 3 || ix.checks != 2 {
		t.Fatalf("a = %q, Len %d, %d checks; want 1, 3, 2", got, sess.Len(), ix.checks)
	}
	sess.Delete("c")
	sess.Set("d", "4")
	st.saveInMemory(t, sess)
	if sess.Len() != 3 || sess.GetString("d") != "4" || sess.Has("c") || ix.checks != 3 {
		t.Fatalf("after a delete and a set: Len %d, d %q, has c %v, %d checks", sess.Len(), sess.GetString("d"), sess.Has("c"), ix.checks)
	}
	if err := sess.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestPatchedDataNotVouchedFor: when the codec does not vouch for data a
// save patched, the first read decodes it whole, with the changes made
// since on top.
func TestPatchedDataNotVouchedFor(t *testing.T) {
	ix := new(countingIndexed)
	st, sess := patchedSession(t, ix)
	sess.Set("b", "two")
	st.saveInMemory(t, sess)
	ix.refuse = true
	sess.Delete("a")
	if sess.rawStands() || ix.checks != 2 {
		t.Fatalf("the first use after the save: reads from data %v, %d checks", sess.rawStands(), ix.checks)
	}
	if sess.Len() != 2 || sess.GetString("b") != "two" || sess.Has("a") || !sess.Changed() {
		t.Fatalf("values %v, changed %v", sess.Values(), sess.Changed())
	}
	if err := sess.Err(); err != nil {
		t.Fatal(err)
	}
}
