package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// maxPooledBuffer is the largest encoder buffer kept for reuse; an encoder
// that grew past it for one big session is dropped.
const maxPooledBuffer = 64 << 10

// encoder holds the scratch space of one Encode call.
type encoder struct {
	buf    []byte
	keys   []string // sorted keys of the maps being written, as a stack
	values int      // map entries and slice elements written so far
	gob    bytes.Buffer
}

var encoderPool = sync.Pool{New: func() any { return &encoder{buf: make([]byte, 0, 512)} }}

var (
	errTooDeep   = fmt.Errorf("maps and slices nested deeper than %d levels (or cyclic)", maxDepth)
	errTooMany   = fmt.Errorf("more than %d map entries and slice elements", maxValues)
	errGobTooBig = fmt.Errorf("gob encoding larger than %d bytes", maxGobValue)
)

// Encode writes values in the binary format. Errors caused by a value wrap
// ErrUnsupported and name its key.
func (binaryCodec) Encode(values map[string]any) ([]byte, error) {
	e := encoderPool.Get().(*encoder)
	out, err := e.encode(values)
	e.release()
	return out, err
}

func (e *encoder) encode(values map[string]any) ([]byte, error) {
	e.buf = append(e.buf[:0], formatV1)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(values)))
	e.values = len(values)
	if e.values > maxValues {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, errTooMany)
	}
	start := len(e.keys)
	e.keys = appendSortedKeys(e.keys, values)
	for i := start; i < len(e.keys); i++ {
		k := e.keys[i]
		e.buf = appendString(e.buf, k)
		if err := e.value(values[k], 1); err != nil {
			return nil, fmt.Errorf("%w: key %q: %w", ErrUnsupported, k, err)
		}
	}
	return bytes.Clone(e.buf), nil
}

// release returns e to the pool without the references it held.
func (e *encoder) release() {
	clear(e.keys[:cap(e.keys)])
	e.keys = e.keys[:0]
	e.gob.Reset()
	if cap(e.buf) > maxPooledBuffer || e.gob.Cap() > maxPooledBuffer {
		return
	}
	encoderPool.Put(e)
}

// count adds n map entries or slice elements to the session's total.
func (e *encoder) count(n int) error {
	e.values += n
	if e.values > maxValues {
		return errTooMany
	}
	return nil
}

// value writes v, held at the given nesting depth (1 in the session map).
func (e *encoder) value(v any, depth int) error {
	switch v := v.(type) {
	case nil:
		e.buf = append(e.buf, tagNil)
	case string:
		e.buf = appendString(append(e.buf, tagString), v)
	case bool:
		if v {
			e.buf = append(e.buf, tagTrue)
		} else {
			e.buf = append(e.buf, tagFalse)
		}
	case int:
		e.buf = binary.AppendVarint(append(e.buf, tagInt), int64(v))
	case int64:
		e.buf = binary.AppendVarint(append(e.buf, tagInt64), v)
	case float64:
		e.buf = binary.LittleEndian.AppendUint64(append(e.buf, tagFloat64), math.Float64bits(v))
	case time.Time:
		return e.time(v)
	case []string:
		e.buf = appendLen(append(e.buf, tagStrings), v == nil, len(v))
		if err := e.count(len(v)); err != nil {
			return err
		}
		for _, s := range v {
			e.buf = appendString(e.buf, s)
		}
	case []byte:
		e.buf = appendLen(append(e.buf, tagBytes), v == nil, len(v))
		e.buf = append(e.buf, v...)
	case int8:
		e.buf = append(e.buf, tagInt8, byte(v))
	case int16:
		e.buf = binary.AppendVarint(append(e.buf, tagInt16), int64(v))
	case int32:
		e.buf = binary.AppendVarint(append(e.buf, tagInt32), int64(v))
	case uint:
		e.buf = binary.AppendUvarint(append(e.buf, tagUint), uint64(v))
	case uint8:
		e.buf = append(e.buf, tagUint8, v)
	case uint16:
		e.buf = binary.AppendUvarint(append(e.buf, tagUint16), uint64(v))
	case uint32:
		e.buf = binary.AppendUvarint(append(e.buf, tagUint32), uint64(v))
	case uint64:
		e.buf = binary.AppendUvarint(append(e.buf, tagUint64), v)
	case float32:
		e.buf = binary.LittleEndian.AppendUint32(append(e.buf, tagFloat32), math.Float32bits(v))
	case time.Duration:
		e.buf = binary.AppendVarint(append(e.buf, tagDuration), int64(v))
	case []int:
		e.buf = appendLen(append(e.buf, tagInts), v == nil, len(v))
		if err := e.count(len(v)); err != nil {
			return err
		}
		for _, n := range v {
			e.buf = binary.AppendVarint(e.buf, int64(n))
		}
	case []any:
		if depth >= maxDepth {
			return errTooDeep
		}
		e.buf = appendLen(append(e.buf, tagAnys), v == nil, len(v))
		if err := e.count(len(v)); err != nil {
			return err
		}
		for _, elem := range v {
			if err := e.value(elem, depth+1); err != nil {
				return err
			}
		}
	case map[string]string:
		e.buf = appendLen(append(e.buf, tagStringMap), v == nil, len(v))
		if err := e.count(len(v)); err != nil {
			return err
		}
		start := len(e.keys)
		e.keys = appendSortedKeys(e.keys, v)
		for _, k := range e.keys[start:] {
			e.buf = appendString(appendString(e.buf, k), v[k])
		}
		e.keys = e.keys[:start]
	case map[string]any:
		if depth >= maxDepth {
			return errTooDeep
		}
		e.buf = appendLen(append(e.buf, tagAnyMap), v == nil, len(v))
		if err := e.count(len(v)); err != nil {
			return err
		}
		start := len(e.keys)
		e.keys = appendSortedKeys(e.keys, v)
		end := len(e.keys)
		for i := start; i < end; i++ {
			// Nested maps push their keys after end and pop them before
			// returning, so e.keys[start:end] stays ours even when the
			// slice is reallocated.
			k := e.keys[i]
			e.buf = appendString(e.buf, k)
			if err := e.value(v[k], depth+1); err != nil {
				return err
			}
		}
		e.keys = e.keys[:start]
	default:
		return e.gobValue(v)
	}
	return nil
}

// time writes t as Unix seconds, nanoseconds and its zone.
func (e *encoder) time(t time.Time) error {
	// Unix wraps around for instants far outside ±292 billion years, and
	// time.Unix wraps back the same way, so every instant round trips.
	e.buf = binary.AppendVarint(append(e.buf, tagTime), t.Unix())
	e.buf = binary.AppendUvarint(e.buf, uint64(t.Nanosecond()))
	if t.Location() == time.UTC {
		e.buf = append(e.buf, zoneUTC)
		return nil
	}
	name, offset := t.Zone()
	if offset < math.MinInt32 || offset > math.MaxInt32 {
		return fmt.Errorf("time zone offset %d s out of range", offset)
	}
	e.buf = binary.AppendVarint(append(e.buf, zoneFixed), int64(offset))
	e.buf = appendString(e.buf, name)
	return nil
}

// gobValue writes v with a fresh gob encoder, as an interface value so that
// Decode gets its registered concrete type back.
func (e *encoder) gobValue(v any) error {
	e.gob.Reset()
	if err := gob.NewEncoder(&e.gob).Encode(&v); err != nil {
		return fmt.Errorf("%T: %w", v, err)
	}
	if e.gob.Len() > maxGobValue {
		return fmt.Errorf("%T: %w", v, errGobTooBig)
	}
	e.buf = binary.AppendUvarint(append(e.buf, tagGob), uint64(e.gob.Len()))
	e.buf = append(e.buf, e.gob.Bytes()...)
	return nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendLen writes the length of a slice or map, with 0 meaning nil.
func appendLen(b []byte, isNil bool, n int) []byte {
	if isNil {
		return append(b, 0)
	}
	return binary.AppendUvarint(b, uint64(n)+1)
}

func appendSortedKeys[V any](keys []string, m map[string]V) []string {
	start := len(keys)
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys[start:])
	return keys
}
