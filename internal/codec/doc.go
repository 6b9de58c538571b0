// Package codec turns a session's values, a map[string]any, into the bytes
// stored in the visit table and back.
//
// A [Codec] has two implementations:
//   - [Binary], the default, a compact versioned binary format that writes
//     the common value types directly and decodes them without reflection,
//     falling back to [encoding/gob] for other registered types;
//   - [JSON], a JSON object through [encoding/json], for data that other
//     languages or people read, at the cost of Go types.
//
// Stored data is untrusted: whoever can write a row can hand Decode any
// bytes. Both codecs return an error wrapping [ErrCorrupt] for input they do
// not accept and never panic; [Binary] also checks every length in its
// input before allocating for it, so what it allocates for its own format
// is bounded by a small multiple of the input's size. Values that a codec
// cannot represent make
// Encode fail with an error wrapping [ErrUnsupported], before anything is
// stored.
//
// Values that go through encoding/gob (only with [Binary], and only for types
// outside its fast paths) are decoded by encoding/gob itself, inside a size
// limit and with panics recovered. encoding/gob is not hardened against
// every crafted stream: a gob value whose type holds a map reads the map's
// length from the input and allocates for it before checking it against the
// input. Keep values that must survive a hostile database to the built-in
// types, or to gob types without maps.
//
// [Binary] also implements [Indexed]: it checks stored data whole without
// building any value, and then decodes single values, so that a session
// decodes only the values a request reads; and [Patcher]: it writes a
// session's new data from its stored data and the keys a request set or
// deleted, copying the other entries as they are stored.
//
// The session package exposes [Binary] as GobCodec and [JSON] as JSONCodec;
// see [github.com/visitsession/visitsession/session].
package codec
