package visit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/visitsession/visitsession/visit"
)

func TestValidateIdent(t *testing.T) {
	good := []string{"visit", "_v", "Visit_2", "a", strings.Repeat("x", visit.MaxIdentLength)}
	bad := []string{"", "1visit", "vi-sit", "vi sit", `vi"sit`, "vi`sit", "vi;sit", "vi\x00sit", "visít", "vi'sit", "vi.sit",
		strings.Repeat("x", visit.MaxIdentLength+1), "visit--", "visit;DROP TABLE x"}
	for _, n := range good {
		if err := visit.ValidateIdent(n); err != nil {
			t.Errorf("ValidateIdent(%q) = %v", n, err)
		}
	}
	for _, n := range bad {
		if err := visit.ValidateIdent(n); err == nil {
			t.Errorf("ValidateIdent(%q) accepted", n)
		}
	}
}

func TestTableValidate(t *testing.T) {
	if err := visit.Default().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := visit.Default().WithName("app.visit").Validate(); err != nil {
		t.Fatalf("qualified name: %v", err)
	}
	for name, tab := range map[string]visit.Table{
		"two dots":     visit.Default().WithName("a.b.c"),
		"empty schema": visit.Default().WithName(".visit"),
		"quote":        visit.Default().WithName(`visit"`),
		"dup columns":  func() visit.Table { t := visit.Default(); t.Expiry = "Created"; return t }(),
		"empty column": func() visit.Table { t := visit.Default(); t.Version = ""; return t }(),
	} {
		if err := tab.Validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, tab)
		}
	}
}

func TestTokens(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok := visit.NewToken()
		if len(tok) != visit.TokenLength {
			t.Fatalf("token length %d", len(tok))
		}
		if _, err := visit.ParseToken(tok); err != nil {
			t.Fatalf("ParseToken(NewToken()) = %v", err)
		}
		if seen[tok] {
			t.Fatal("duplicate token")
		}
		seen[tok] = true
		h := visit.HashToken(tok)
		if sum := sha256.Sum256([]byte(tok)); h != hex.EncodeToString(sum[:visit.KeyLength/2]) {
			t.Fatalf("HashToken(%q) = %q, want %x", tok, h, sum[:visit.KeyLength/2])
		}
		if visit.KeyPlain.StoredKey(tok) != tok || visit.KeyHashed.StoredKey(tok) != h {
			t.Fatal("StoredKey")
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", 39), strings.Repeat("a", 41), strings.Repeat("a", 39) + "=",
		strings.Repeat("a", 39) + "+", strings.Repeat("a", 39) + "/", strings.Repeat("a", 39) + "\x00", strings.Repeat("é", 20)} {
		if _, err := visit.ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) accepted", bad)
		}
	}
}

// TestHashTokenAllocs pins the allocations of hashing a token, run by
// every load and save: one, the key string itself.
func TestHashTokenAllocs(t *testing.T) {
	tok := visit.NewToken()
	if n := testing.AllocsPerRun(100, func() { _ = visit.HashToken(tok) }); n != 1 {
		t.Fatalf("HashToken allocates %v times, want 1 (the key)", n)
	}
	long := tok + tok
	if visit.HashToken(long) == visit.HashToken(tok) || len(visit.HashToken(long)) != visit.KeyLength {
		t.Fatal("HashToken of a longer string")
	}
}
