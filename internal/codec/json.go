package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// JSON returns a codec that stores the session as one JSON object, readable
// by other languages and by people. It uses encoding/json, so values come
// back as JSON types rather than their original Go types:
//
//   - numbers as [encoding/json.Number], which keeps the exact digits (an
//     int64 user id above 2^53 survives) and converts with its Int64 and
//     Float64 methods;
//   - []byte as a base64 string;
//   - time.Time as an RFC 3339 string with nanoseconds, and time.Duration
//     as a number of nanoseconds;
//   - every slice as []any and every map or struct as map[string]any;
//   - types with a MarshalJSON or MarshalText method as what that returns.
//
// Strings, bools, nil, []any and map[string]any of those round trip
// unchanged, except that invalid UTF-8 is replaced by U+FFFD.
//
// Encode of a value encoding/json cannot write (a channel, a func, a
// complex number, NaN or ±Inf, a cyclic structure, or a marshaler that
// fails) returns an error wrapping [ErrUnsupported]. Decode of anything but
// a single JSON object, optionally surrounded by white space, returns an
// error wrapping [ErrCorrupt]. Output is deterministic: encoding/json sorts
// map keys.
func JSON() Codec { return jsonCodec{} }

type jsonCodec struct{}

var _ Codec = jsonCodec{}

// Name returns "json".
func (jsonCodec) Name() string { return "json" }

// Encode writes values as a JSON object; a nil map is written as {}.
func (jsonCodec) Encode(values map[string]any) ([]byte, error) {
	if values == nil {
		return []byte("{}"), nil
	}
	data, err := json.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return data, nil
}

var errJSONNotObject = errors.New("not a JSON object")

// Decode reads one JSON object. Every error wraps ErrCorrupt.
func (jsonCodec) Decode(data []byte) (values map[string]any, err error) {
	defer func() {
		if r := recover(); r != nil {
			values, err = nil, fmt.Errorf("%w: json decoder panic: %v", ErrCorrupt, r)
		}
	}()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&values); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if values == nil {
		// The input was null.
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, errJSONNotObject)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrCorrupt)
	}
	return values, nil
}
