package session

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/visitsession/visitsession/visit"
)

// DefaultCookieName is the session cookie's name unless
// [CookieOptions.Name] says otherwise.
const DefaultCookieName = "visit"

// CookieOptions configures the session cookie that [Middleware] reads and
// sends. The zero value is a persistent, Secure, HttpOnly, SameSite=Lax
// cookie named "visit" for the whole host. The cookie is always HttpOnly:
// scripts never need the token.
type CookieOptions struct {
	// Name is the cookie's name. A name starting with "__Host-" requires
	// Secure, Path "/" and no Domain; one starting with "__Secure-"
	// requires Secure (NewMiddleware checks both).
	// Default: "visit".
	Name string
	// Path limits the cookie to a part of the site.
	// Default: "/".
	Path string
	// Domain, when set, shares the cookie with the subdomains of this
	// domain.
	// Default: "" (a host-only cookie).
	Domain string
	// Insecure leaves out the Secure attribute, so that the cookie also
	// travels over plain http: only for local development.
	// Default: false (the cookie is Secure).
	Insecure bool
	// SameSite is the cookie's SameSite attribute. The zero value means
	// Lax; http.SameSiteDefaultMode leaves the attribute out, and
	// http.SameSiteNoneMode requires Secure.
	// Default: http.SameSiteLaxMode.
	SameSite http.SameSite
	// SessionOnly makes the cookie last until the browser closes, with no
	// Expires or Max-Age, instead of expiring with the session.
	// Default: false (persistent: Expires and Max-Age follow the session's
	// expiry, and the cookie is sent again whenever the expiry moves).
	SessionOnly bool
}

// cookieConfig is CookieOptions with defaults applied and checked.
type cookieConfig struct {
	name       string
	path       string
	domain     string
	secure     bool
	sameSite   http.SameSite
	persistent bool

	// The Set-Cookie header's fixed parts, as net/http renders them:
	// head comes before the value, mid between the value and the expiry
	// attributes (Path, Domain), tail after them (HttpOnly, Secure,
	// SameSite). Set by resolve.
	head, mid, tail string
}

func (o CookieOptions) resolve() (cookieConfig, error) {
	c := cookieConfig{
		name:       o.Name,
		path:       o.Path,
		domain:     o.Domain,
		secure:     !o.Insecure,
		sameSite:   o.SameSite,
		persistent: !o.SessionOnly,
	}
	if c.name == "" {
		c.name = DefaultCookieName
	}
	if c.path == "" {
		c.path = "/"
	}
	if c.sameSite == 0 {
		c.sameSite = http.SameSiteLaxMode
	}
	switch {
	case !strings.HasPrefix(c.path, "/"):
		return c, fmt.Errorf("cookie path %q must start with /", c.path)
	case c.sameSite < http.SameSiteDefaultMode || c.sameSite > http.SameSiteNoneMode:
		return c, fmt.Errorf("unknown SameSite mode %d", int(c.sameSite))
	case c.sameSite == http.SameSiteNoneMode && !c.secure:
		return c, fmt.Errorf("cookie %q: SameSite=None requires Secure (Insecure is set)", c.name)
	}
	if hasPrefixFold(c.name, "__Host-") {
		switch {
		case !c.secure:
			return c, fmt.Errorf("cookie %q: the __Host- prefix requires Secure (Insecure is set)", c.name)
		case c.path != "/":
			return c, fmt.Errorf("cookie %q: the __Host- prefix requires Path \"/\", not %q", c.name, c.path)
		case c.domain != "":
			return c, fmt.Errorf("cookie %q: the __Host- prefix forbids a Domain", c.name)
		}
	}
	if hasPrefixFold(c.name, "__Secure-") && !c.secure {
		return c, fmt.Errorf("cookie %q: the __Secure- prefix requires Secure (Insecure is set)", c.name)
	}
	placeholder := strings.Repeat("A", visit.TokenLength)
	probe := c.cookie(placeholder)
	if err := probe.Valid(); err != nil {
		return c, fmt.Errorf("cookie: %w", err)
	}
	// net/http renders the attributes that never change once; each
	// response's header is then those parts around its value and expiry.
	line := probe.String()
	head := c.name + "="
	value := strings.Index(line, "="+placeholder) + 1
	tail := strings.LastIndex(line, "; HttpOnly")
	if value != len(head) || tail < value+len(placeholder) {
		return c, fmt.Errorf("cookie %q: unexpected rendering %q", c.name, line)
	}
	c.head, c.mid, c.tail = head, line[value+len(placeholder):tail], line[tail:]
	return c, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// cookie returns the cookie carrying value, with no expiry attributes.
func (c cookieConfig) cookie(value string) *http.Cookie {
	return &http.Cookie{
		Name:     c.name,
		Value:    value,
		Path:     c.path,
		Domain:   c.domain,
		Secure:   c.secure,
		HttpOnly: true,
		SameSite: c.sameSite,
	}
}

// forToken returns the Set-Cookie header of the cookie for token:
// persistent ones expire with the session, at expiry as seen from now on
// the store's clock.
func (c cookieConfig) forToken(token string, expiry, now time.Time) string {
	if c.persistent && !expiry.IsZero() {
		return c.header(token, expiry, max(1, int((expiry.Sub(now)+time.Second-1)/time.Second)))
	}
	return c.header(token, time.Time{}, 0)
}

// expired returns the Set-Cookie header that makes the browser forget the
// session.
func (c cookieConfig) expired() string { return c.header("", time.Unix(1, 0), -1) }

// header returns the Set-Cookie header of the cookie carrying value, a
// token or "", with Expires (unless expires is zero) and Max-Age (unless
// maxAge is 0, as in http.Cookie): what net/http's Cookie.String writes,
// without a Cookie to build and check for every response.
func (c cookieConfig) header(value string, expires time.Time, maxAge int) string {
	var b strings.Builder
	b.Grow(len(c.head) + len(value) + len(c.mid) + len(c.tail) + len("; Expires=Mon, 02 Jan 2006 15:04:05 GMT; Max-Age=2147483647"))
	b.WriteString(c.head)
	b.WriteString(value)
	b.WriteString(c.mid)
	var buf [32]byte
	if expires.Year() >= 1601 { // as net/http: earlier instants are left out
		b.WriteString("; Expires=")
		b.Write(appendHTTPTime(buf[:0], expires))
	}
	switch {
	case maxAge > 0:
		b.WriteString("; Max-Age=")
		b.Write(strconv.AppendInt(buf[:0], int64(maxAge), 10))
	case maxAge < 0:
		b.WriteString("; Max-Age=0")
	}
	b.WriteString(c.tail)
	return b.String()
}

// appendHTTPTime appends t in http.TimeFormat, as t.UTC().AppendFormat
// does, without interpreting the layout for each call.
func appendHTTPTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 1000 || y > 9999 {
		return t.AppendFormat(b, http.TimeFormat)
	}
	h, mi, s := t.Clock()
	b = append(b, "SunMonTueWedThuFriSat"[t.Weekday()*3:][:3]...)
	b = append(b, ',', ' ', byte('0'+d/10), byte('0'+d%10), ' ')
	b = append(b, "JanFebMarAprMayJunJulAugSepOctNovDec"[(mo-1)*3:][:3]...)
	b = append(b, ' ', byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), ' ',
		byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':', byte('0'+s/10), byte('0'+s%10))
	return append(b, " GMT"...)
}

// read returns the token of the request's session cookie: the first
// cookie of that name holding a well-formed token, or "". present reports
// whether any cookie of that name came, well-formed or not.
func (c cookieConfig) read(r *http.Request) (token string, present bool) {
	// Parsed in place, as net/http does but without building a Cookie for
	// every pair of every request: one for each would cost allocations
	// on requests that never touch the session.
	for _, line := range r.Header["Cookie"] {
		for pair := range strings.SplitSeq(line, ";") {
			name, value, _ := strings.Cut(textproto.TrimString(pair), "=")
			if textproto.TrimString(name) != c.name {
				continue
			}
			present = true
			if len(value) > 1 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			if tok, err := visit.ParseToken(value); err == nil {
				return tok, true
			}
		}
	}
	return "", present
}
