package codec

import "errors"

// Codec turns a session's values into bytes and back.
//
// Implementations are safe for concurrent use. Decode errors wrap
// [ErrCorrupt]; Encode errors for values the codec cannot represent wrap
// [ErrUnsupported].
type Codec interface {
	// Encode returns the stored form of values. A nil map encodes like an
	// empty one. The returned slice belongs to the caller.
	Encode(values map[string]any) ([]byte, error)
	// Decode returns the values stored in data, which must come from Encode
	// of the same codec. The map is never nil when err is nil. Decode does
	// not keep data, so the caller may reuse it.
	Decode(data []byte) (map[string]any, error)
	// Name identifies the stored format: "binary" or "json".
	Name() string
}

var (
	// ErrCorrupt reports data that does not decode: truncated, altered,
	// written by another codec or over a limit. Decode failures wrap it.
	ErrCorrupt = errors.New("codec: corrupt session data")
	// ErrUnsupported reports a value the codec cannot represent, such as a
	// channel, a func, or a type not registered with encoding/gob. Encode
	// failures caused by a value wrap it.
	ErrUnsupported = errors.New("codec: unsupported value type")
)
