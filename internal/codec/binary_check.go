package codec

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Indexed is implemented by codecs whose stored data can be checked whole
// without building any value, and then read one value at a time. A store
// uses it to give a loaded session its values on demand: a request that
// reads one value of ten decodes one.
type Indexed interface {
	// Check reports whether Decode accepts data, without allocating: when
	// ok is true, Decode succeeds and n is the number of values. When ok
	// is false Check cannot vouch for data and the caller must Decode it,
	// which gives the error if there is one. Check fills index, when it
	// is not empty, for Lookup.
	Check(data []byte, index []uint32) (n int, ok bool)
	// Lookup decodes the value stored under key in data that Check
	// accepted, as Decode would, allocating only for that value. index is
	// the one Check filled for data, or empty.
	Lookup(data []byte, index []uint32, key string) (v any, found bool, err error)
}

var _ Indexed = binaryCodec{}

// errNotChecked is Lookup's error for data that Check would not vouch for.
var errNotChecked = fmt.Errorf("%w: lookup in data that Check does not vouch for", ErrCorrupt)

// Check walks data with the checks of Decode, building nothing. It does
// not vouch for data that holds a gob-encoded value (only encoding/gob
// knows whether it decodes), nor for a map whose keys are not in strictly
// ascending order, as Encode writes them (a duplicate key would need a
// set to find), nor for data that Decode refuses.
//
// index receives the offsets of every stride-th key of the session, where
// stride is the number of values over len(index), rounded up, so that
// Lookup searches the sampled keys and walks at most stride entries.
func (binaryCodec) Check(data []byte, index []uint32) (n int, ok bool) {
	defer func() {
		if recover() != nil {
			n, ok = 0, false // let Decode tell
		}
	}()
	w := walker{data: data, values: maxValues}
	n, off := w.header()
	if off < 0 || uint64(len(data)) > math.MaxUint32 {
		return 0, false
	}
	stride := indexStride(n, len(index))
	next, slot := 0, 0 // the next entry to index, and its slot
	if stride == 0 {
		next = -1
	}
	var prev, k []byte
	for i := range n {
		if i == next {
			index[slot] = uint32(off)
			next, slot = next+stride, slot+1
		}
		if off >= len(data) {
			return 0, false
		}
		// A key shorter than 128 bytes, the usual case, is read here:
		// walker.bytes is too large to be inlined.
		if l := int(data[off]); l < 0x80 && l < len(data)-off {
			k, off = data[off+1:off+1+l], off+1+l
		} else if k, off = w.bytes(off); off < 0 {
			return 0, false
		}
		if i > 0 && string(prev) >= string(k) {
			return 0, false
		}
		prev = k
		if off >= len(data) {
			return 0, false
		}
		// Short strings and bools, the commonest values, are passed here.
		switch data[off] {
		case tagString:
			if off+1 < len(data) {
				if l := int(data[off+1]); l < 0x80 && l < len(data)-off-1 {
					off += 2 + l
					break
				}
			}
			off = w.skip(off + 1)
		case tagNil, tagFalse, tagTrue:
			off++
		default:
			off = w.value(off, 1)
		}
		if off < 0 {
			return 0, false
		}
	}
	return n, off == len(data)
}

// indexStride returns how many entries apart the keys of an index of size
// slots over n entries are, or 0 for no index.
func indexStride(n, slots int) int {
	if slots == 0 || n == 0 {
		return 0
	}
	return (n + slots - 1) / slots
}

// Lookup finds key among the sorted keys of data, through the index when
// there is one, and decodes its value alone: the value's strings share one
// copy of the value's bytes.
func (binaryCodec) Lookup(data []byte, index []uint32, key string) (v any, found bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, found, err = nil, false, fmt.Errorf("%w: decoder panic: %v", ErrCorrupt, r)
		}
	}()
	w := walker{data: data, values: maxValues}
	n, off := w.header()
	if off < 0 {
		return nil, false, errNotChecked
	}
	entries := n
	if stride := indexStride(n, len(index)); stride > 0 {
		// The last sampled key not after key starts the walk.
		lo, hi := 0, (n+stride-1)/stride
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			k, _ := w.bytes(int(index[mid]))
			if string(k) > key {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		if lo == 0 {
			return nil, false, nil
		}
		off, entries = int(index[lo-1]), min(stride, n-(lo-1)*stride)
	}
	for range entries {
		k, next := w.bytes(off)
		if next < 0 {
			return nil, false, errNotChecked
		}
		if string(k) > key {
			return nil, false, nil // keys ascend: key is not here
		}
		if tag := tagAt(data, next); string(k) == key && tag != tagString && (tag < tagTime || tag == tagDuration) {
			// A value holding no string needs no end for its strings.
			d := decoder{data: data, strBase: next, strEnd: next, off: next, values: maxValues}
			v, err := d.value(1)
			return v, err == nil, err
		}
		end := w.value(next, 1)
		if end < 0 {
			return nil, false, errNotChecked
		}
		if string(k) == key {
			d := decoder{data: data, strBase: next, strEnd: end, off: next, values: maxValues}
			v, err := d.value(1)
			return v, err == nil, err
		}
		off = end
	}
	return nil, false, nil
}

// tagAt returns the tag at off, or tagGob past the end.
func tagAt(data []byte, off int) byte {
	if off < len(data) {
		return data[off]
	}
	return tagGob
}

// walker passes over an encoding as the decoder reads it, with the same
// checks, building nothing. Each step takes the offset to read at and
// returns the offset after what it read, or -1 when the input does not
// decode or only decoding can tell.
type walker struct {
	data   []byte
	values int // map entries and slice elements still allowed
}

// header checks the version byte and reads the number of values.
func (w *walker) header() (n, off int) {
	if len(w.data) == 0 || w.data[0] != formatV1 {
		return 0, -1
	}
	return w.count(1, 2)
}

func (w *walker) uvarint(off int) (uint64, int) {
	if off < len(w.data) && w.data[off] < 0x80 {
		return uint64(w.data[off]), off + 1
	}
	return w.uvarintSlow(off)
}

func (w *walker) uvarintSlow(off int) (uint64, int) {
	v, n := binary.Uvarint(w.data[off:])
	if n <= 0 {
		return 0, -1
	}
	return v, off + n
}

func (w *walker) varint(off int) (int64, int) {
	v, n := binary.Varint(w.data[off:])
	if n <= 0 {
		return 0, -1
	}
	return v, off + n
}

// bytes reads a length-prefixed byte string at off.
func (w *walker) bytes(off int) ([]byte, int) {
	if off >= 0 && off < len(w.data) {
		if n := int(w.data[off]); n < 0x80 && n < len(w.data)-off {
			return w.data[off+1 : off+1+n], off + 1 + n
		}
	}
	return w.bytesSlow(off)
}

func (w *walker) bytesSlow(off int) ([]byte, int) {
	if off < 0 || off >= len(w.data) {
		return nil, -1
	}
	n, off := w.uvarint(off)
	if off < 0 || n > uint64(len(w.data)-off) {
		return nil, -1
	}
	end := off + int(n)
	return w.data[off:end], end
}

// skip passes over a length-prefixed byte string at off.
func (w *walker) skip(off int) int {
	_, end := w.bytes(off)
	return end
}

// count reads the number of entries or elements of a collection whose
// entries take at least minSize bytes each, charged to the session's total.
func (w *walker) count(off, minSize int) (int, int) {
	n, off := w.uvarint(off)
	if off < 0 {
		return 0, -1
	}
	return w.charge(n, off, minSize)
}

// nilableCount reads a clen: uvarint(n+1), or 0 for nil.
func (w *walker) nilableCount(off, minSize int) (int, int) {
	v, off := w.uvarint(off)
	if off < 0 || v == 0 {
		return 0, off
	}
	return w.charge(v-1, off, minSize)
}

func (w *walker) charge(n uint64, off, minSize int) (int, int) {
	if n > uint64((len(w.data)-off)/minSize) || n > uint64(w.values) {
		return 0, -1
	}
	w.values -= int(n)
	return int(n), off
}

// value passes over one tagged value held at depth.
func (w *walker) value(off, depth int) int {
	if off < 0 || off >= len(w.data) {
		return -1
	}
	tag := w.data[off]
	off++
	switch tag {
	case tagNil, tagFalse, tagTrue:
		return off
	case tagString:
		return w.skip(off)
	case tagBytes:
		v, off := w.uvarint(off)
		if off < 0 || v == 0 {
			return off
		}
		if v-1 > uint64(len(w.data)-off) {
			return -1
		}
		return off + int(v-1)
	case tagInt:
		v, off := w.varint(off)
		if int64(int(v)) != v {
			return -1
		}
		return off
	case tagInt64, tagDuration:
		_, off := w.varint(off)
		return off
	case tagInt8, tagUint8:
		if off >= len(w.data) {
			return -1
		}
		return off + 1
	case tagInt16:
		v, off := w.varint(off)
		if v < math.MinInt16 || v > math.MaxInt16 {
			return -1
		}
		return off
	case tagInt32:
		v, off := w.varint(off)
		if v < math.MinInt32 || v > math.MaxInt32 {
			return -1
		}
		return off
	case tagUint:
		v, off := w.uvarint(off)
		if uint64(uint(v)) != v {
			return -1
		}
		return off
	case tagUint64:
		_, off := w.uvarint(off)
		return off
	case tagUint16:
		v, off := w.uvarint(off)
		if v > math.MaxUint16 {
			return -1
		}
		return off
	case tagUint32:
		v, off := w.uvarint(off)
		if v > math.MaxUint32 {
			return -1
		}
		return off
	case tagFloat32:
		if len(w.data)-off < 4 {
			return -1
		}
		return off + 4
	case tagFloat64:
		if len(w.data)-off < 8 {
			return -1
		}
		return off + 8
	case tagTime:
		return w.time(off)
	case tagStrings:
		n, off := w.nilableCount(off, 1)
		for range n {
			if off = w.skip(off); off < 0 {
				return -1
			}
		}
		return off
	case tagInts:
		n, off := w.nilableCount(off, 1)
		for range n {
			var v int64
			if v, off = w.varint(off); off < 0 || int64(int(v)) != v {
				return -1
			}
		}
		return off
	case tagAnys:
		if depth >= maxDepth {
			return -1
		}
		n, off := w.nilableCount(off, 1)
		for range n {
			if off = w.value(off, depth+1); off < 0 {
				return -1
			}
		}
		return off
	case tagStringMap, tagAnyMap:
		if tag == tagAnyMap && depth >= maxDepth {
			return -1
		}
		n, off := w.nilableCount(off, 2)
		var prev, k []byte
		for i := range n {
			if k, off = w.bytes(off); off < 0 || (i > 0 && string(prev) >= string(k)) {
				return -1
			}
			prev = k
			if tag == tagStringMap {
				off = w.skip(off)
			} else {
				off = w.value(off, depth+1)
			}
			if off < 0 {
				return -1
			}
		}
		return off
	}
	return -1 // a gob value, or an unknown tag
}

// time passes over a time, with the checks of the decoder's time.
func (w *walker) time(off int) int {
	if _, off = w.varint(off); off < 0 {
		return -1
	}
	nsec, off := w.uvarint(off)
	if off < 0 || nsec >= 1e9 || off >= len(w.data) {
		return -1
	}
	zone := w.data[off]
	off++
	switch zone {
	case zoneUTC:
		return off
	case zoneFixed:
		offset, off := w.varint(off)
		if off < 0 || offset < math.MinInt32 || offset > math.MaxInt32 {
			return -1
		}
		return w.skip(off)
	}
	return -1
}
