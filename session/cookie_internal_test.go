package session

import (
	"net/http"
	"testing"

	"github.com/visitsession/visitsession/visit"
)

// readReference is what cookieConfig.read did through net/http's cookie
// parser.
func readReference(c cookieConfig, r *http.Request) (token string, present bool) {
	for _, ck := range r.CookiesNamed(c.name) {
		present = true
		if tok, err := visit.ParseToken(ck.Value); err == nil {
			return tok, true
		}
	}
	return "", present
}

// FuzzCookieRead checks the in-place cookie parser against net/http's:
// the same token from any Cookie header lines, and a cookie seen as
// present wherever net/http sees one.
func FuzzCookieRead(f *testing.F) {
	tok := visit.NewToken()
	for _, seed := range []string{
		"visit=" + tok,
		"a=b; visit=" + tok + "; c=d",
		`visit="` + tok + `"`,
		"visit=short; visit=" + tok,
		" visit = " + tok,
		"visit=" + tok + ";visit=" + visit.NewToken(),
		"visitx=" + tok,
		"VISIT=" + tok,
		";;visit=" + tok + ";;",
		"visit=" + tok[:39] + "!",
		"visit",
		"",
	} {
		f.Add(seed, "other=1")
	}
	c := cookieConfig{name: DefaultCookieName}
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		r := &http.Request{Header: http.Header{"Cookie": {line1, line2}}}
		got, gotPresent := c.read(r)
		want, wantPresent := readReference(c, r)
		if got != want {
			t.Fatalf("token %q, net/http gives %q", got, want)
		}
		if wantPresent && !gotPresent {
			t.Fatalf("cookie not seen although net/http sees one")
		}
	})
}

// TestCookieReadAllocs pins the cost of reading the cookie: nothing.
func TestCookieReadAllocs(t *testing.T) {
	c := cookieConfig{name: DefaultCookieName}
	r := &http.Request{Header: http.Header{"Cookie": {"theme=dark; visit=" + visit.NewToken() + "; lang=en"}}}
	if n := testing.AllocsPerRun(100, func() { c.read(r) }); n != 0 {
		t.Fatalf("reading the cookie allocates %v times", n)
	}
}
