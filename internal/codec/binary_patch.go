package codec

import (
	"bytes"
	"encoding/binary"
)

// Patcher is implemented by codecs that can write a session's new data from
// the data its values were read from, re-encoding only the values that
// changed. A store uses it to save a session of which a request set or
// deleted a few values: the others are copied as they are stored.
type Patcher interface {
	// Patch returns the data of base's values with changes applied: each
	// key of changes set (true) to its value in values, which holds at
	// least the keys set, or deleted (false). n is the number of values
	// in data. For a base that Encode wrote, data is what Encode returns
	// for those values. ok is false when Patch cannot derive the data
	// (base does not check or holds a value only decoding can vouch for,
	// a key set is missing from values, a changed value does not encode,
	// a limit is passed): the caller must then Encode the values, which
	// reports any error.
	Patch(base []byte, changes map[string]bool, values map[string]any) (data []byte, n int, ok bool)
}

var _ Patcher = binaryCodec{}

// Patch walks base with the checks of Check, copying each entry whose key
// did not change and writing the changed ones from values, in key order.
func (binaryCodec) Patch(base []byte, changes map[string]bool, values map[string]any) (data []byte, n int, ok bool) {
	e := encoderPool.Get().(*encoder)
	defer func() {
		if recover() != nil {
			data, n, ok = nil, 0, false // let Encode tell
		}
		e.release()
	}()
	return e.patch(base, changes, values)
}

func (e *encoder) patch(base []byte, changes map[string]bool, values map[string]any) ([]byte, int, bool) {
	w := walker{data: base, values: maxValues}
	n, off := w.header()
	if off < 0 {
		return nil, 0, false
	}
	e.keys = appendSortedKeys(e.keys[:0], changes)
	changed := e.keys
	// The entries go after room for the longest header, which is written
	// in front of them at the end.
	const room = 1 + binary.MaxVarintLen64
	e.buf, e.values = e.buf[:room], 0
	written, next := 0, 0 // entries written; the next changed key to place
	run := off            // where the stored entries not yet copied begin
	var prev []byte
	for i := range n {
		start := off
		k, voff := w.bytes(off)
		if voff < 0 || (i > 0 && !keyBefore(prev, k)) {
			return nil, 0, false
		}
		prev = k
		before := w.values
		if off = w.value(voff, 1); off < 0 {
			return nil, 0, false
		}
		replaced := false
		for next < len(changed) && !replaced {
			c := compareKey(changed[next], k)
			if c > 0 {
				break
			}
			// A changed key at or before this entry: the stored
			// entries before it go first.
			e.buf = append(e.buf, base[run:start]...)
			run = start
			if !e.put(changed[next], changes, values, &written) {
				return nil, 0, false
			}
			next++
			replaced = c == 0
		}
		if replaced {
			run = off
			continue
		}
		// Unchanged: copied with its neighbours, its elements counted
		// as Encode counts them.
		e.values += 1 + before - w.values
		written++
	}
	if off != len(base) {
		return nil, 0, false
	}
	e.buf = append(e.buf, base[run:off]...)
	for ; next < len(changed); next++ {
		if !e.put(changed[next], changes, values, &written) {
			return nil, 0, false
		}
	}
	if e.values > maxValues {
		return nil, 0, false
	}
	var head [room]byte
	head[0] = formatV1
	h := 1 + binary.PutUvarint(head[1:], uint64(written))
	copy(e.buf[room-h:], head[:h])
	return bytes.Clone(e.buf[room-h:]), written, true
}

// compareKey compares two keys as strings, deciding on the first byte
// when it differs without a call.
func compareKey(a string, b []byte) int {
	switch {
	case len(a) > 0 && len(b) > 0 && a[0] != b[0]:
		return int(a[0]) - int(b[0])
	case a < string(b):
		return -1
	case a == string(b):
		return 0
	}
	return 1
}

// keyBefore reports whether key a sorts strictly before key b, deciding on
// the first byte when it differs without a call.
func keyBefore(a, b []byte) bool {
	if len(a) > 0 && len(b) > 0 && a[0] != b[0] {
		return a[0] < b[0]
	}
	return string(a) < string(b)
}

// put writes the entry of the changed key k, if it was set, counting it
// in written; false if its value is missing from values or does not encode.
func (e *encoder) put(k string, changes map[string]bool, values map[string]any, written *int) bool {
	if !changes[k] {
		return true
	}
	v, in := values[k]
	if !in {
		return false
	}
	e.values++
	*written++
	e.buf = appendString(e.buf, k)
	return e.value(v, 1) == nil
}
