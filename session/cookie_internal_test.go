package session

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

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

// TestCookieHeaderAsNetHTTP holds the Set-Cookie headers the middleware
// writes to what net/http's Cookie.String writes for the same cookie, over
// every kind of option, value and expiry.
func TestCookieHeaderAsNetHTTP(t *testing.T) {
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0xc00c))
	var opts []CookieOptions
	for _, name := range []string{"", "sid", "__Host-s", "__Secure-s"} {
		for _, path := range []string{"", "/", "/app/x"} {
			for _, domain := range []string{"", "example.com", ".sub.example.com"} {
				for _, same := range []http.SameSite{0, http.SameSiteDefaultMode, http.SameSiteLaxMode, http.SameSiteStrictMode, http.SameSiteNoneMode} {
					for _, insecure := range []bool{false, true} {
						for _, sessionOnly := range []bool{false, true} {
							opts = append(opts, CookieOptions{Name: name, Path: path, Domain: domain, SameSite: same, Insecure: insecure, SessionOnly: sessionOnly})
						}
					}
				}
			}
		}
	}
	resolved := 0
	for _, o := range opts {
		c, err := o.resolve()
		if err != nil {
			continue
		}
		resolved++
		want := func(value string, expires time.Time, maxAge int) string {
			ck := c.cookie(value)
			ck.Expires, ck.MaxAge = expires, maxAge
			return ck.String()
		}
		check := func(got, want string) {
			t.Helper()
			if got != want {
				t.Fatalf("options %+v:\n got %q\nwant %q", o, got, want)
			}
		}
		check(c.expired(), want("", time.Unix(1, 0).UTC(), -1))
		for range 50 {
			tok := visit.NewToken()
			now := time.Unix(r.Int64N(1<<34), r.Int64N(1e9))
			expiry := now.Add(time.Duration(r.Int64N(int64(400 * 24 * time.Hour))))
			if !c.persistent {
				check(c.forToken(tok, expiry, now), want(tok, time.Time{}, 0))
				continue
			}
			maxAge := max(1, int((expiry.Sub(now)+time.Second-1)/time.Second))
			check(c.forToken(tok, expiry, now), want(tok, expiry.UTC(), maxAge))
			check(c.forToken(tok, time.Time{}, now), want(tok, time.Time{}, 0))
		}
		for _, at := range []time.Time{{}, time.Date(1600, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC),
			time.Date(999, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 29, 0, 0, 0, 0, time.FixedZone("x", 5*3600))} {
			for _, maxAge := range []int{-1, 0, 1, 1 << 31} {
				check(c.header("", at, maxAge), want("", at, maxAge))
			}
		}
	}
	if resolved < 100 {
		t.Fatalf("only %d option sets resolved", resolved)
	}
}

// TestAppendHTTPTime holds appendHTTPTime to the time package's
// http.TimeFormat over random instants and zones.
func TestAppendHTTPTime(t *testing.T) {
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x717e))
	for range 100000 {
		at := time.Unix(r.Int64N(1<<36)-1<<35, 0).In(time.FixedZone("z", (r.IntN(48)-24)*1800))
		if got, want := string(appendHTTPTime(nil, at)), at.UTC().Format(http.TimeFormat); got != want {
			t.Fatalf("%v: %q, want %q", at, got, want)
		}
	}
}

// BenchmarkCookieHeader measures the Set-Cookie header of a persistent
// cookie as the middleware writes it, beside net/http's Cookie.String of
// the same cookie.
func BenchmarkCookieHeader(b *testing.B) {
	c, err := CookieOptions{}.resolve()
	if err != nil {
		b.Fatal(err)
	}
	tok := visit.NewToken()
	now := time.Now()
	expiry := now.Add(2 * time.Hour)
	var out string
	b.Run("middleware", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out = c.forToken(tok, expiry, now)
		}
	})
	b.Run("net-http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ck := c.cookie(tok)
			ck.Expires, ck.MaxAge = expiry.UTC(), max(1, int((expiry.Sub(now)+time.Second-1)/time.Second))
			out = ck.String()
		}
	})
	_ = out
}
