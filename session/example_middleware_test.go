package session_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers "sqlite"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// openExampleStore opens a store with opts on a fresh SQLite file in a
// temporary directory; cleanup removes it.
func openExampleStore(ctx context.Context, opts ...session.Option) (store *session.Store, cleanup func()) {
	dir, err := os.MkdirTemp("", "visitsession-example-")
	if err != nil {
		log.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := visit.Migrate(ctx, db, dialect.SQLite(), visit.Default()); err != nil {
		log.Fatal(err)
	}
	store, err = session.Open(ctx, db, dialect.SQLite(), opts...)
	if err != nil {
		log.Fatal(err)
	}
	return store, func() {
		store.Close()
		db.Close()
		os.RemoveAll(dir)
	}
}

// get fetches url with client and returns the body.
func get(client *http.Client, method, url string) string {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	return string(b)
}

// A visit counter: the middleware loads the session on first use and
// saves it before the response goes out.
func ExampleNewMiddleware() {
	ctx := context.Background()
	store, cleanup := openExampleStore(ctx)
	defer cleanup()

	mw, err := session.NewMiddleware(ctx, store, session.MiddlewareOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer mw.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n := s.GetInt("visits") + 1
		s.Set("visits", n)
		fmt.Fprintf(w, "visit number %d", n)
	})

	// The cookie is Secure by default, so serve over TLS.
	srv := httptest.NewTLSServer(mw.Wrap(mux))
	defer srv.Close()
	client := srv.Client()
	client.Jar, _ = cookiejar.New(nil)
	for range 3 {
		fmt.Println(get(client, "GET", srv.URL+"/"))
	}
	// Output:
	// visit number 1
	// visit number 2
	// visit number 3
}

// Login renews the token, against session fixation; logout ends the
// session and expires the cookie.
func ExampleFromContext() {
	ctx := context.Background()
	store, cleanup := openExampleStore(ctx)
	defer cleanup()
	mw, err := session.NewMiddleware(ctx, store, session.MiddlewareOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer mw.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Set("user", "alice")
		if err := store.Renew(r.Context(), s); err != nil {
			http.Error(w, "login failed", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "logged in")
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := store.Destroy(r.Context(), session.FromContext(r.Context())); err != nil {
			http.Error(w, "logout failed", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "logged out")
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		user := session.FromContext(r.Context()).GetString("user")
		if user == "" {
			user = "nobody"
		}
		io.WriteString(w, user)
	})
	mux.HandleFunc("POST /note", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set("note", "hello")
	})

	srv := httptest.NewTLSServer(mw.Wrap(mux))
	defer srv.Close()
	client := srv.Client()
	client.Jar, _ = cookiejar.New(nil)
	token := func() string {
		for _, c := range client.Jar.Cookies(mustParse(srv.URL)) {
			return c.Value
		}
		return ""
	}

	get(client, "POST", srv.URL+"/note") // an anonymous session
	before := token()
	fmt.Println(get(client, "POST", srv.URL+"/login"))
	fmt.Println("token renewed:", token() != before && token() != "")
	fmt.Println(get(client, "GET", srv.URL+"/whoami"))
	fmt.Println(get(client, "POST", srv.URL+"/logout"))
	fmt.Println("cookie gone:", token() == "")
	fmt.Println(get(client, "GET", srv.URL+"/whoami"))
	// Output:
	// logged in
	// token renewed: true
	// alice
	// logged out
	// cookie gone: true
	// nobody
}

// With TrackAll every visitor gets a visit row and a cookie on the first
// request, as with TurboGears' visit tracking.
func ExampleCurrentVisit() {
	ctx := context.Background()
	store, cleanup := openExampleStore(ctx)
	defer cleanup()
	mw, err := session.NewMiddleware(ctx, store, session.MiddlewareOptions{TrackAll: true})
	if err != nil {
		log.Fatal(err)
	}
	defer mw.Close()

	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := session.CurrentVisit(r.Context())
		fmt.Fprintf(w, "new visit: %v", v.IsNew)
	}))
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	client := srv.Client()
	client.Jar, _ = cookiejar.New(nil)
	fmt.Println(get(client, "GET", srv.URL))
	fmt.Println(get(client, "GET", srv.URL))
	// Output:
	// new visit: true
	// new visit: false
}

func mustParse(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		log.Fatal(err)
	}
	return u
}
