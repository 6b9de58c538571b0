package session_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
)

func TestNewMiddlewareRejectsInvalidOptions(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	st, err := session.Open(context.Background(), tg.DB, tg.Dialect, session.WithTable(tg.CreateTable(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cases := []struct {
		name string
		opts session.MiddlewareOptions
	}{
		{"__Host- without Secure", session.MiddlewareOptions{Cookie: session.CookieOptions{Name: "__Host-visit", Insecure: true}}},
		{"__Host- with Domain", session.MiddlewareOptions{Cookie: session.CookieOptions{Name: "__Host-visit", Domain: "example.com"}}},
		{"__Host- with Path", session.MiddlewareOptions{Cookie: session.CookieOptions{Name: "__Host-visit", Path: "/app"}}},
		{"__host- in lower case", session.MiddlewareOptions{Cookie: session.CookieOptions{Name: "__host-visit", Insecure: true}}},
		{"__Secure- without Secure", session.MiddlewareOptions{Cookie: session.CookieOptions{Name: "__Secure-visit", Insecure: true}}},
		{"SameSite=None without Secure", session.MiddlewareOptions{Cookie: session.CookieOptions{SameSite: http.SameSiteNoneMode, Insecure: true}}},
		{"unknown SameSite", session.MiddlewareOptions{Cookie: session.CookieOptions{SameSite: 9}}},
		{"name with a space", session.MiddlewareOptions{Cookie: session.CookieOptions{Name: "my visit"}}},
		{"name with a semicolon", session.MiddlewareOptions{Cookie: session.CookieOptions{Name: "v;x"}}},
		{"relative path", session.MiddlewareOptions{Cookie: session.CookieOptions{Path: "app"}}},
		{"path with a semicolon", session.MiddlewareOptions{Cookie: session.CookieOptions{Path: "/a;b"}}},
		{"bad domain", session.MiddlewareOptions{Cookie: session.CookieOptions{Domain: "exa mple.com"}}},
		{"negative batch", session.MiddlewareOptions{TouchBatch: -time.Second}},
		{"unknown decode policy", session.MiddlewareOptions{DecodeErrors: 7}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mw, err := session.NewMiddleware(context.Background(), st, tc.opts)
			if !errors.Is(err, session.ErrMiddlewareOptions) {
				t.Fatalf("got %v, %v; want ErrMiddlewareOptions", mw, err)
			}
		})
	}
	t.Run("nil store", func(t *testing.T) {
		if _, err := session.NewMiddleware(context.Background(), nil, session.MiddlewareOptions{}); !errors.Is(err, session.ErrMiddlewareOptions) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("valid __Host- cookie", func(t *testing.T) {
		mw, err := session.NewMiddleware(context.Background(), st, session.MiddlewareOptions{Cookie: session.CookieOptions{Name: "__Host-visit"}})
		if err != nil {
			t.Fatal(err)
		}
		mw.Close()
	})
}

// TestMiddlewareCookieAttributes checks the Set-Cookie line for each
// cookie option, in process.
func TestMiddlewareCookieAttributes(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	write := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set("k", "v")
	})
	cases := []struct {
		name    string
		cookie  session.CookieOptions
		want    []string // substrings of the Set-Cookie line
		notWant []string
	}{
		{"defaults", session.CookieOptions{},
			[]string{"visit=", "Path=/", "Max-Age=3600", "Expires=", "HttpOnly", "Secure", "SameSite=Lax"}, []string{"Domain="}},
		{"insecure", session.CookieOptions{Insecure: true}, []string{"HttpOnly", "SameSite=Lax"}, []string{"Secure"}},
		{"session only", session.CookieOptions{SessionOnly: true}, []string{"HttpOnly", "Secure"}, []string{"Max-Age", "Expires"}},
		{"domain, path, name", session.CookieOptions{Name: "sid", Domain: "example.com", Path: "/app"},
			[]string{"sid=", "Domain=example.com", "Path=/app"}, []string{"visit="}},
		{"strict", session.CookieOptions{SameSite: http.SameSiteStrictMode}, []string{"SameSite=Strict"}, nil},
		{"none", session.CookieOptions{SameSite: http.SameSiteNoneMode}, []string{"SameSite=None", "Secure"}, nil},
		{"no SameSite attribute", session.CookieOptions{SameSite: http.SameSiteDefaultMode}, []string{"HttpOnly"}, []string{"SameSite"}},
		{"__Host- prefix", session.CookieOptions{Name: "__Host-visit"}, []string{"__Host-visit=", "Path=/", "Secure"}, []string{"Domain"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newMWClock()
			st, err := session.Open(context.Background(), tg.DB, tg.Dialect, session.WithTable(tg.CreateTable(t)),
				session.WithClock(clk.Now), session.WithIdleTimeout(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			mw, err := session.NewMiddleware(context.Background(), st, session.MiddlewareOptions{Cookie: tc.cookie})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mw.Close() })
			rec := serve(mw.Wrap(write), "POST", "https://example.com/app/x", "")
			lines := rec.Header().Values("Set-Cookie")
			if len(lines) != 1 {
				t.Fatalf("Set-Cookie lines %q, want one", lines)
			}
			for _, w := range tc.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("Set-Cookie %q lacks %q", lines[0], w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(lines[0], w) {
					t.Errorf("Set-Cookie %q has %q", lines[0], w)
				}
			}
			if strings.Contains(lines[0], "Expires=") {
				ck, err := http.ParseSetCookie(lines[0])
				if err != nil {
					t.Fatal(err)
				}
				if want := clk.Now().Add(time.Hour); !ck.Expires.Equal(want) {
					t.Errorf("Expires = %v, want the session's expiry %v", ck.Expires, want)
				}
			}
		})
	}
}

// TestMiddlewareSecureCookieOverTLS runs the default, Secure cookie
// through a TLS server and a jar: the jar sends it back over https.
func TestMiddlewareSecureCookieOverTLS(t *testing.T) {
	e := newHTTPEnv(t, testdb.Get(t, "sqlite"), envConfig{tls: true, secure: true})
	c := e.client(t)
	r := e.do(t, c, "POST", "/count", url.Values{}, "")
	if ck := r.cookie(t); !ck.Secure || !ck.HttpOnly {
		t.Fatalf("cookie %+v", ck)
	}
	if r = e.do(t, c, "POST", "/count", url.Values{}, ""); r.body != "n=2" {
		t.Fatalf("second request over TLS: %q", r.body)
	}
}
