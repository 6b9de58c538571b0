package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"fmt"
	"math"
	"time"
)

// decoder reads one encoding. Every read checks the remaining input first,
// and every count is checked against it before anything is allocated.
type decoder struct {
	data []byte
	// str is a copy of data[strBase:strEnd], made on the first string
	// read, that backs every decoded string, so that keys and string values
	// cost no allocation of their own.
	str             string
	strBase, strEnd int
	off             int
	values          int // map entries and slice elements still allowed
}

// Decode reads values written by Encode. Every error wraps ErrCorrupt.
func (binaryCodec) Decode(data []byte) (values map[string]any, err error) {
	defer func() {
		if r := recover(); r != nil {
			values, err = nil, fmt.Errorf("%w: decoder panic: %v", ErrCorrupt, r)
		}
	}()
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrCorrupt)
	}
	if data[0] != formatV1 {
		return nil, fmt.Errorf("%w: unknown format version 0x%02x", ErrCorrupt, data[0])
	}
	d := decoder{data: data, strEnd: len(data), off: 1, values: maxValues}
	n, err := d.count(2)
	if err != nil {
		return nil, err
	}
	values, err = d.mapAny(n, 1)
	if err != nil {
		return nil, err
	}
	if d.off != len(d.data) {
		return nil, d.corrupt("trailing bytes")
	}
	return values, nil
}

func (d *decoder) corrupt(what string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrCorrupt, what, d.off)
}

func (d *decoder) remaining() int { return len(d.data) - d.off }

func (d *decoder) byte() (byte, error) {
	if d.off >= len(d.data) {
		return 0, d.corrupt("truncated input")
	}
	b := d.data[d.off]
	d.off++
	return b, nil
}

func (d *decoder) uvarint() (uint64, error) {
	if d.off < len(d.data) && d.data[d.off] < 0x80 {
		v := uint64(d.data[d.off])
		d.off++
		return v, nil
	}
	v, n := binary.Uvarint(d.data[d.off:])
	if n <= 0 {
		return 0, d.corrupt("bad or truncated uvarint")
	}
	d.off += n
	return v, nil
}

func (d *decoder) varint() (int64, error) {
	v, n := binary.Varint(d.data[d.off:])
	if n <= 0 {
		return 0, d.corrupt("bad or truncated varint")
	}
	d.off += n
	return v, nil
}

// length reads a byte length and checks it against the remaining input.
func (d *decoder) length() (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(d.remaining()) {
		return 0, d.corrupt("length past end of input")
	}
	return int(n), nil
}

// count reads the number of entries or elements of a collection whose
// entries take at least minSize bytes each, and charges it to the session's
// total.
func (d *decoder) count(minSize int) (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	return d.charge(n, minSize)
}

// nilableCount reads a clen: uvarint(n+1), or 0 for nil.
func (d *decoder) nilableCount(minSize int) (n int, isNil bool, err error) {
	v, err := d.uvarint()
	if err != nil {
		return 0, false, err
	}
	if v == 0 {
		return 0, true, nil
	}
	n, err = d.charge(v-1, minSize)
	return n, false, err
}

func (d *decoder) charge(n uint64, minSize int) (int, error) {
	if n > uint64(d.remaining()/minSize) {
		return 0, d.corrupt("count past end of input")
	}
	if n > uint64(d.values) {
		return 0, d.corrupt(fmt.Sprintf("more than %d map entries and slice elements", maxValues))
	}
	d.values -= int(n)
	return int(n), nil
}

func (d *decoder) string() (string, error) {
	n, err := d.length()
	if err != nil {
		return "", err
	}
	if n == 0 {
		return "", nil
	}
	if d.str == "" {
		d.str = string(d.data[d.strBase:d.strEnd])
	}
	s := d.str[d.off-d.strBase : d.off-d.strBase+n]
	d.off += n
	return s, nil
}

// mapAny reads n entries of a map held at the given depth.
func (d *decoder) mapAny(n, depth int) (map[string]any, error) {
	m := make(map[string]any, n)
	for range n {
		k, err := d.string()
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	if len(m) != n {
		return nil, d.corrupt("duplicate map key")
	}
	return m, nil
}

// value reads one tagged value held at the given depth.
func (d *decoder) value(depth int) (any, error) {
	tag, err := d.byte()
	if err != nil {
		return nil, err
	}
	switch tag {
	case tagNil:
		return nil, nil
	case tagFalse:
		return false, nil
	case tagTrue:
		return true, nil
	case tagString:
		s, err := d.string()
		if err != nil {
			return nil, err
		}
		return s, nil
	case tagBytes:
		n, isNil, err := d.nilableBytes()
		if err != nil || isNil {
			return []byte(nil), err
		}
		b := make([]byte, n)
		d.off += copy(b, d.data[d.off:])
		return b, nil
	case tagInt:
		v, err := d.varint()
		if err != nil {
			return nil, err
		}
		if int64(int(v)) != v {
			return nil, d.corrupt("int out of range")
		}
		return int(v), nil
	case tagInt8:
		b, err := d.byte()
		return int8(b), err
	case tagInt16:
		v, err := d.varint()
		if err == nil && (v < math.MinInt16 || v > math.MaxInt16) {
			err = d.corrupt("int16 out of range")
		}
		return int16(v), err
	case tagInt32:
		v, err := d.varint()
		if err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
			err = d.corrupt("int32 out of range")
		}
		return int32(v), err
	case tagInt64:
		v, err := d.varint()
		return v, err
	case tagUint:
		v, err := d.uvarint()
		if err == nil && uint64(uint(v)) != v {
			err = d.corrupt("uint out of range")
		}
		return uint(v), err
	case tagUint8:
		b, err := d.byte()
		return b, err
	case tagUint16:
		v, err := d.uvarint()
		if err == nil && v > math.MaxUint16 {
			err = d.corrupt("uint16 out of range")
		}
		return uint16(v), err
	case tagUint32:
		v, err := d.uvarint()
		if err == nil && v > math.MaxUint32 {
			err = d.corrupt("uint32 out of range")
		}
		return uint32(v), err
	case tagUint64:
		v, err := d.uvarint()
		return v, err
	case tagFloat32:
		if d.remaining() < 4 {
			return nil, d.corrupt("truncated float32")
		}
		v := math.Float32frombits(binary.LittleEndian.Uint32(d.data[d.off:]))
		d.off += 4
		return v, nil
	case tagFloat64:
		if d.remaining() < 8 {
			return nil, d.corrupt("truncated float64")
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(d.data[d.off:]))
		d.off += 8
		return v, nil
	case tagTime:
		t, err := d.time()
		if err != nil {
			return nil, err
		}
		return t, nil
	case tagDuration:
		v, err := d.varint()
		return time.Duration(v), err
	case tagStrings:
		n, isNil, err := d.nilableCount(1)
		if err != nil || isNil {
			return []string(nil), err
		}
		s := make([]string, n)
		for i := range s {
			if s[i], err = d.string(); err != nil {
				return nil, err
			}
		}
		return s, nil
	case tagInts:
		n, isNil, err := d.nilableCount(1)
		if err != nil || isNil {
			return []int(nil), err
		}
		s := make([]int, n)
		for i := range s {
			v, err := d.varint()
			if err != nil {
				return nil, err
			}
			if int64(int(v)) != v {
				return nil, d.corrupt("int out of range")
			}
			s[i] = int(v)
		}
		return s, nil
	case tagAnys:
		if depth >= maxDepth {
			return nil, d.corrupt(fmt.Sprintf("nesting deeper than %d levels", maxDepth))
		}
		n, isNil, err := d.nilableCount(1)
		if err != nil || isNil {
			return []any(nil), err
		}
		s := make([]any, n)
		for i := range s {
			if s[i], err = d.value(depth + 1); err != nil {
				return nil, err
			}
		}
		return s, nil
	case tagStringMap:
		n, isNil, err := d.nilableCount(2)
		if err != nil || isNil {
			return map[string]string(nil), err
		}
		m := make(map[string]string, n)
		for range n {
			k, err := d.string()
			if err != nil {
				return nil, err
			}
			if m[k], err = d.string(); err != nil {
				return nil, err
			}
		}
		if len(m) != n {
			return nil, d.corrupt("duplicate map key")
		}
		return m, nil
	case tagAnyMap:
		if depth >= maxDepth {
			return nil, d.corrupt(fmt.Sprintf("nesting deeper than %d levels", maxDepth))
		}
		n, isNil, err := d.nilableCount(2)
		if err != nil || isNil {
			return map[string]any(nil), err
		}
		m, err := d.mapAny(n, depth+1)
		if err != nil {
			return nil, err
		}
		return m, nil
	case tagGob:
		return d.gobValue()
	}
	d.off--
	return nil, d.corrupt(fmt.Sprintf("unknown tag 0x%02x", tag))
}

// nilableBytes reads the clen of a []byte.
func (d *decoder) nilableBytes() (n int, isNil bool, err error) {
	v, err := d.uvarint()
	if err != nil {
		return 0, false, err
	}
	if v == 0 {
		return 0, true, nil
	}
	if v-1 > uint64(d.remaining()) {
		return 0, false, d.corrupt("length past end of input")
	}
	return int(v - 1), false, nil
}

func (d *decoder) time() (time.Time, error) {
	sec, err := d.varint()
	if err != nil {
		return time.Time{}, err
	}
	nsec, err := d.uvarint()
	if err != nil {
		return time.Time{}, err
	}
	if nsec >= 1e9 {
		return time.Time{}, d.corrupt("nanoseconds out of range")
	}
	t := time.Unix(sec, int64(nsec))
	zone, err := d.byte()
	if err != nil {
		return time.Time{}, err
	}
	switch zone {
	case zoneUTC:
		return t.UTC(), nil
	case zoneFixed:
		offset, err := d.varint()
		if err != nil {
			return time.Time{}, err
		}
		if offset < math.MinInt32 || offset > math.MaxInt32 {
			return time.Time{}, d.corrupt("zone offset out of range")
		}
		name, err := d.string()
		if err != nil {
			return time.Time{}, err
		}
		if local := t.In(time.Local); sameZone(local, name, int(offset)) {
			return local, nil
		}
		return t.In(time.FixedZone(name, int(offset))), nil
	}
	d.off--
	return time.Time{}, d.corrupt(fmt.Sprintf("unknown time zone kind 0x%02x", zone))
}

func sameZone(t time.Time, name string, offset int) bool {
	n, o := t.Zone()
	return o == offset && n == name
}

// gobValue reads a value encoded with encoding/gob. The blob is bounded in
// size, decoded by a fresh decoder that must consume all of it, and any
// panic inside encoding/gob is recovered by Decode.
func (d *decoder) gobValue() (any, error) {
	n, err := d.length()
	if err != nil {
		return nil, err
	}
	if n > maxGobValue {
		return nil, d.corrupt(fmt.Sprintf("gob value larger than %d bytes", maxGobValue))
	}
	r := bytes.NewReader(d.data[d.off : d.off+n])
	var v any
	if err := gob.NewDecoder(r).Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: gob value at offset %d: %w", ErrCorrupt, d.off, err)
	}
	if r.Len() != 0 {
		return nil, d.corrupt("trailing bytes in gob value")
	}
	d.off += n
	return v, nil
}
