package codec

// The binary format, version 1. Integers are varints as written by
// encoding/binary: "uvarint" is unsigned, "varint" is zig-zag signed.
//
//	session   = version count entry*          count entries, keys sorted
//	version   = 0xB1
//	count     = uvarint
//	entry     = key value
//	key       = uvarint(len) bytes
//	value     = tag payload
//
// Payload by tag. A "clen" is uvarint(len+1), with 0 for a nil slice or
// map, so nil and empty both round trip.
//
//	0x00 nil             (none)
//	0x01 false           (none)
//	0x02 true            (none)
//	0x03 string          uvarint(len) bytes
//	0x04 []byte          clen bytes
//	0x05 int             varint
//	0x06 int8            1 byte
//	0x07 int16           varint
//	0x08 int32           varint
//	0x09 int64           varint
//	0x0A uint            uvarint
//	0x0B uint8           1 byte
//	0x0C uint16          uvarint
//	0x0D uint32          uvarint
//	0x0E uint64          uvarint
//	0x0F float32         4 bytes, little-endian IEEE 754 bits
//	0x10 float64         8 bytes, little-endian IEEE 754 bits
//	0x11 time.Time       varint(Unix seconds) uvarint(nanoseconds) zone
//	0x12 time.Duration   varint(nanoseconds)
//	0x13 []string        clen (uvarint(len) bytes)*
//	0x14 []int           clen varint*
//	0x15 []any           clen value*
//	0x16 map[string]string  clen (key string)*    keys sorted
//	0x17 map[string]any     clen (key value)*     keys sorted
//	0x18 gob             uvarint(len) gob stream of the value as an interface
//
//	zone      = 0x00                                  UTC
//	          | 0x01 varint(offset seconds) uvarint(len) name
//
// The version byte 0xB1 can begin neither an encoding/gob stream (whose
// first byte is below 0x80 or at least 0xF8) nor a JSON document, so a store
// can tell the formats apart.

// formatV1 is the first byte of every encoding in this format.
const formatV1 byte = 0xB1

// Value tags.
const (
	tagNil byte = iota
	tagFalse
	tagTrue
	tagString
	tagBytes
	tagInt
	tagInt8
	tagInt16
	tagInt32
	tagInt64
	tagUint
	tagUint8
	tagUint16
	tagUint32
	tagUint64
	tagFloat32
	tagFloat64
	tagTime
	tagDuration
	tagStrings
	tagInts
	tagAnys
	tagStringMap
	tagAnyMap
	tagGob
)

// Zone kinds of a time.Time.
const (
	zoneUTC byte = iota
	zoneFixed
)

// Limits shared by Encode and Decode, so that whatever encodes also decodes.
const (
	// maxDepth is the deepest nesting of maps and []any, counting the
	// session map itself as one level.
	maxDepth = 32
	// maxValues caps the number of map entries and slice elements in one
	// session, summed over every level.
	maxValues = 1 << 20
	// maxGobValue caps the size of one gob-encoded value.
	maxGobValue = 1 << 20
)

// Binary returns the default codec: a compact, versioned binary format with
// fast paths for the common types and encoding/gob for any other type.
//
// These types are written directly, without reflection, and decode to the
// same Go type: nil, string, []byte, bool, int, int8, int16, int32, int64,
// uint, uint8, uint16, uint32, uint64, float32, float64, time.Time,
// time.Duration, []string, []int, []any, map[string]string and
// map[string]any, nested to 32 levels in all. Nil slices and maps stay nil;
// empty ones stay empty; NaN payloads and negative zero are kept.
//
// A time.Time keeps its instant to the nanosecond over the whole range of
// the type and drops its monotonic clock reading. A UTC time decodes in
// [time.UTC]. Any other time keeps its zone offset and abbreviation: it
// decodes in [time.Local] when the local zone has that offset and name at
// that instant, and otherwise in a fixed zone with them ([time.FixedZone]),
// so it is Equal to the original and formats the same, but zone rules for
// other instants are not kept.
//
// Any other type, including named types such as `type Role string`, is
// written with encoding/gob as an interface value, so its concrete type
// must be registered with [encoding/gob.Register]; Encode of an
// unregistered type returns an error wrapping [ErrUnsupported]. Such a value
// decodes to the type that was registered: register T{} to get T back and
// &T{} to get *T. Inside it, encoding/gob and the type's own marshalers
// decide what round trips; a time.Time field, for one, goes through
// [time.Time.MarshalBinary], which keeps the instant and the zone offset
// but not the zone name. Each gob-encoded value is limited to 1 MiB and
// costs a gob encoder or decoder of its own, which rebuilds its type
// information, so keep hot session values to the types above.
//
// Output is deterministic: map keys are written in sorted order, so equal
// sessions encode to equal bytes (except for gob-encoded values that
// contain maps, which encoding/gob writes in map order). Sorting costs a
// little on Encode and nothing on Decode, and lets a store compare encodings.
//
// Decode treats its input as hostile. It checks every length and count
// against the remaining input before allocating, limits nesting to 32
// levels and a session to 1,048,576 map entries and slice elements in all,
// rejects unknown versions and tags, duplicate keys and trailing bytes, and
// turns any panic, including one inside encoding/gob, into an error wrapping
// [ErrCorrupt]. Encode rejects, with [ErrUnsupported], what Decode would
// refuse, including cyclic maps and slices.
//
// Decode copies data into one string that backs every decoded key and
// string value, so it allocates once for all of them; any one of those
// strings keeps that copy of the whole input alive.
func Binary() Codec { return binaryCodec{} }

type binaryCodec struct{}

var _ Codec = binaryCodec{}

// Name returns "binary".
func (binaryCodec) Name() string { return "binary" }
