package visit

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
)

// TokenLength is the length of a session token in characters: 30 random
// bytes (240 bits) in unpadded base64url.
const TokenLength = 40

// KeyLength is the width of the key column: 40 characters, as in
// TurboGears' visit table.
const KeyLength = 40

const tokenBytes = 30

// ErrMalformedToken reports a token with the wrong length or alphabet.
var ErrMalformedToken = errors.New("visit: malformed token")

// NewToken returns a fresh token of [TokenLength] base64url characters
// carrying 240 bits from crypto/rand.
func NewToken() string {
	var b [tokenBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseToken checks that s is a well-formed token: exactly [TokenLength]
// characters of the base64url alphabet. It returns [ErrMalformedToken]
// otherwise, so a forged or truncated cookie costs no query.
func ParseToken(s string) (string, error) {
	if len(s) != TokenLength {
		return "", ErrMalformedToken
	}
	var bad byte
	for i := 0; i < TokenLength; i++ {
		bad |= notBase64URL[s[i]]
	}
	if bad != 0 {
		return "", ErrMalformedToken
	}
	return s, nil
}

// notBase64URL is 1 for every byte outside the base64url alphabet.
var notBase64URL = func() (t [256]byte) {
	for c := range t {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			t[c] = 1
		}
	}
	return t
}()

// KeyMode says how a token becomes the value stored in the key column.
type KeyMode int

const (
	// KeyHashed stores the first 40 hex digits (160 bits) of the token's
	// SHA-256, so that reading the table reveals no usable token. It is the
	// default.
	KeyHashed KeyMode = iota
	// KeyPlain stores the token itself, for tables shared with code that
	// expects the raw key in the column.
	KeyPlain
)

// String returns "hashed" or "plain".
func (m KeyMode) String() string {
	switch m {
	case KeyHashed:
		return "hashed"
	case KeyPlain:
		return "plain"
	}
	return "unknown"
}

// HashToken returns the key stored for token in [KeyHashed] mode: the first
// 40 lowercase hex digits of SHA-256(token).
func HashToken(token string) string {
	var sum [sha256.Size]byte
	if len(token) <= TokenLength {
		// A copy on the stack: converting a string longer than 32 bytes
		// to a []byte allocates.
		var buf [TokenLength]byte
		n := copy(buf[:], token)
		sum = sha256.Sum256(buf[:n])
	} else {
		sum = sha256.Sum256([]byte(token))
	}
	var out [KeyLength]byte
	hex.Encode(out[:], sum[:KeyLength/2])
	return string(out[:])
}

// StoredKey returns the column value for token under mode m.
func (m KeyMode) StoredKey(token string) string {
	if m == KeyPlain {
		return token
	}
	return HashToken(token)
}
