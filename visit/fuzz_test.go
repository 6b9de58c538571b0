package visit_test

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

// Seed corpora live in testdata/fuzz/<FuzzName>; the seeds added here are
// the edge cases every run starts from.

// tokenAlphabet is the base64url alphabet that tokens are made of.
var tokenAlphabet = regexp.MustCompile(`^[A-Za-z0-9_-]*$`)

// FuzzParseToken checks that ParseToken never panics, accepts exactly the
// strings of TokenLength base64url characters and returns them unchanged,
// and that the stored key of an accepted token is 40 lowercase hex digits.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{
		"",
		"AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_Aa",
		strings.Repeat("A", visit.TokenLength),
		strings.Repeat("-", visit.TokenLength),
		strings.Repeat("_", visit.TokenLength),
		strings.Repeat("A", visit.TokenLength-1),
		strings.Repeat("A", visit.TokenLength+1),
		strings.Repeat("A", visit.TokenLength-1) + "=",
		strings.Repeat("A", visit.TokenLength-1) + "+",
		strings.Repeat("A", visit.TokenLength-1) + "/",
		strings.Repeat("A", visit.TokenLength-1) + "\x00",
		strings.Repeat("A", visit.TokenLength-2) + "é",
		strings.Repeat("A", visit.TokenLength-1) + "\xff",
		"' OR '1'='1" + strings.Repeat("A", visit.TokenLength-11),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := visit.ParseToken(s)
		wellFormed := len(s) == visit.TokenLength && tokenAlphabet.MatchString(s)
		if err != nil {
			if !errors.Is(err, visit.ErrMalformedToken) {
				t.Fatalf("ParseToken(%q) error %v does not wrap ErrMalformedToken", s, err)
			}
			if tok != "" {
				t.Fatalf("ParseToken(%q) returned %q with an error", s, tok)
			}
			if wellFormed {
				t.Fatalf("ParseToken(%q) rejected a well-formed token: %v", s, err)
			}
			return
		}
		if !wellFormed {
			t.Fatalf("ParseToken(%q) accepted a malformed token", s)
		}
		if tok != s {
			t.Fatalf("ParseToken(%q) = %q, want the input unchanged", s, tok)
		}
		if raw, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(raw) != 30 {
			t.Fatalf("accepted token %q decodes to %d bytes, %v; want 30", tok, len(raw), err)
		}
		key := visit.HashToken(tok)
		if len(key) != visit.KeyLength || strings.Trim(key, "0123456789abcdef") != "" {
			t.Fatalf("HashToken(%q) = %q, want %d lowercase hex digits", tok, key, visit.KeyLength)
		}
		if got := visit.KeyHashed.StoredKey(tok); got != key {
			t.Fatalf("KeyHashed.StoredKey = %q, HashToken = %q", got, key)
		}
		if got := visit.KeyPlain.StoredKey(tok); got != tok {
			t.Fatalf("KeyPlain.StoredKey(%q) = %q, want the token", tok, got)
		}
	})
}

// plainIdent is what ValidateIdent must accept, length aside.
var plainIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// identQuotes are the characters that delimit or end a quoted identifier
// or a string literal in one of the supported databases.
const identQuotes = "\"`'"

// FuzzValidateIdent checks that ValidateIdent accepts exactly the plain
// identifiers of at most MaxIdentLength bytes, that Table.Validate accepts
// the name as a table name exactly when it is one identifier or two joined
// by a dot, and that quoting an accepted name in every dialect puts no
// quote character in it other than the dialect's own delimiters around
// each part.
func FuzzValidateIdent(f *testing.F) {
	for _, s := range []string{
		"", "visit", "_", "_1", "a1", "1a", "Visit_Key", "user", "order",
		strings.Repeat("a", visit.MaxIdentLength),
		strings.Repeat("a", visit.MaxIdentLength+1),
		"app.visit", "app.", ".visit", "a.b.c",
		`vi"sit`, "vi`sit", "vi'sit", "visit;DROP TABLE visit", "visit--", "vi sit",
		"visit\x00", "visité", "VISIT\u212a", "a-b", "a$b",
		`"visit"`, "`visit`", `x"."y`,
	} {
		f.Add(s)
	}
	dialects := []dialect.Dialect{dialect.Postgres(), dialect.MySQL(), dialect.SQLite()}
	f.Fuzz(func(t *testing.T, name string) {
		err := visit.ValidateIdent(name)
		want := plainIdent.MatchString(name) && len(name) <= visit.MaxIdentLength
		switch {
		case err != nil && !errors.Is(err, visit.ErrInvalidName):
			t.Fatalf("ValidateIdent(%q) error %v does not wrap ErrInvalidName", name, err)
		case err != nil && want:
			t.Fatalf("ValidateIdent(%q) rejected a plain identifier: %v", name, err)
		case err == nil && !want:
			t.Fatalf("ValidateIdent(%q) accepted a name that is not a plain identifier of at most %d bytes", name, visit.MaxIdentLength)
		}

		parts := strings.Split(name, ".")
		qualified := len(parts) <= 2
		for _, p := range parts {
			qualified = qualified && visit.ValidateIdent(p) == nil
		}
		terr := visit.Default().WithName(name).Validate()
		switch {
		case terr != nil && !errors.Is(terr, visit.ErrInvalidName):
			t.Fatalf("Validate of table %q: error %v does not wrap ErrInvalidName", name, terr)
		case terr != nil && qualified:
			t.Fatalf("Validate rejected table name %q: %v", name, terr)
		case terr == nil && !qualified:
			t.Fatalf("Validate accepted table name %q", name)
		case terr != nil:
			return
		}

		for _, d := range dialects {
			delim := d.Quote("x")[:1]
			quoted := d.Quote(name)
			if want := delim + strings.Join(parts, delim+"."+delim) + delim; quoted != want {
				t.Fatalf("%s: Quote(%q) = %s, want %s", d.Name(), name, quoted, want)
			}
			for _, q := range identQuotes {
				n, wantN := strings.Count(quoted, string(q)), 0
				if string(q) == delim {
					wantN = 2 * len(parts)
				}
				if n != wantN {
					t.Fatalf("%s: Quote(%q) = %s holds %d %q characters, want %d", d.Name(), name, quoted, n, q, wantN)
				}
			}
		}
	})
}
