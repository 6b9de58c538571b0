package galera_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// instance is one application instance: its own pool on one node, Store,
// middleware and HTTP server.
type instance struct {
	node  int
	store *session.Store
	srv   *httptest.Server
}

// newInstance starts an application instance on node i whose handlers
// set, read, renew and end the session.
func newInstance(t *testing.T, c *cluster, i int, tab visit.Table, kv ...string) *instance {
	t.Helper()
	st := openStore(t, c.open(t, i, kv...), tab)
	mw, err := session.NewMiddleware(t.Context(), st, session.MiddlewareOptions{
		Cookie: session.CookieOptions{Insecure: true}, // httptest serves plain http
		Logger: testLogger(t, slog.LevelInfo),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mw.Close() })
	mux := http.NewServeMux()
	mux.HandleFunc("POST /set", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set(r.FormValue("k"), r.FormValue("v"))
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(session.FromContext(r.Context()).Values())
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := st.Renew(r.Context(), session.FromContext(r.Context())); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := st.Destroy(r.Context(), session.FromContext(r.Context())); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	srv := httptest.NewServer(mw.Wrap(mux))
	t.Cleanup(srv.Close)
	return &instance{node: i, store: st, srv: srv}
}

// visitor is one browser: it keeps the session cookie, whichever instance
// set it, as a browser behind a load balancer does.
type visitor struct {
	mu    sync.Mutex
	token string
}

// do sends one request and returns the status and body. A Set-Cookie of
// the session cookie replaces the visitor's token, or removes it when it
// has expired.
func (v *visitor) do(ctx context.Context, in *instance, method, path string, form url.Values) (int, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, in.srv.URL+path, body)
	if err != nil {
		return 0, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	v.mu.Lock()
	if v.token != "" {
		req.AddCookie(&http.Cookie{Name: session.DefaultCookieName, Value: v.token})
	}
	v.mu.Unlock()
	resp, err := in.srv.Client().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.Name != session.DefaultCookieName {
			continue
		}
		v.mu.Lock()
		if ck.MaxAge < 0 || ck.Value == "" {
			v.token = ""
		} else {
			v.token = ck.Value
		}
		v.mu.Unlock()
	}
	return resp.StatusCode, string(b), err
}

func (v *visitor) current() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.token
}

// values GETs the session's values from in.
func (v *visitor) values(t *testing.T, in *instance) map[string]any {
	t.Helper()
	code, body, err := v.do(t.Context(), in, "GET", "/get", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /get on node %d: %d %q %v", in.node+1, code, body, err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("GET /get on node %d: %q: %v", in.node+1, body, err)
	}
	return m
}

func (v *visitor) set(t *testing.T, in *instance, k, val string) {
	t.Helper()
	code, body, err := v.do(t.Context(), in, "POST", "/set", url.Values{"k": {k}, "v": {val}})
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST /set on node %d: %d %q %v", in.node+1, code, body, err)
	}
}

func (v *visitor) post(t *testing.T, in *instance, path string) {
	t.Helper()
	code, body, err := v.do(t.Context(), in, "POST", path, url.Values{})
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST %s on node %d: %d %q %v", path, in.node+1, code, body, err)
	}
}

// TestHTTPThreeInstances serves one visitor from three application
// instances, one per node, each with its own pool, Store, middleware and
// server: first in turn, each request on the next node, then with
// concurrent requests spread over all three.
//
// The pools read causally (wsrep_sync_wait=1): without it, a request on
// one node may not yet see what the visitor's previous request wrote on
// another (see TestReadYourWritesAcrossNodes).
func TestHTTPThreeInstances(t *testing.T) {
	c := getCluster(t)
	tab := c.table(t)
	var ins []*instance
	for i := range 3 {
		ins = append(ins, newInstance(t, c, i, tab, "wsrep_sync_wait", "1"))
	}
	ctx := t.Context()
	v := &visitor{}

	// In turn: each request goes to the next node and sees what the
	// previous one, on another node, wrote.
	v.set(t, ins[0], "step0", "0")
	tok := v.current()
	if tok == "" {
		t.Fatal("no session cookie after the first write")
	}
	const steps = 30
	for i := 1; i <= steps; i++ {
		v.set(t, ins[i%3], fmt.Sprintf("step%d", i), fmt.Sprint(i))
		got := v.values(t, ins[(i+1)%3])
		for j := 0; j <= i; j++ {
			if got[fmt.Sprintf("step%d", j)] != fmt.Sprint(j) {
				t.Fatalf("step %d: node %d wrote, node %d read %v: step%d missing", i, i%3+1, (i+1)%3+1, got, j)
			}
		}
		if v.current() != tok {
			t.Fatalf("step %d: the visitor's token changed: the session was not found on node %d", i, i%3+1)
		}
	}

	// Login on node 2 rotates the token; the old one works nowhere.
	old := tok
	v.post(t, ins[1], "/login")
	tok = v.current()
	if tok == old || tok == "" {
		t.Fatal("login did not send a new token")
	}
	if got := v.values(t, ins[2]); len(got) != steps+1 {
		t.Fatalf("after login, node 3 reads %d keys, want %d", len(got), steps+1)
	}
	for _, in := range ins {
		stale := &visitor{token: old}
		if got := stale.values(t, in); len(got) != 0 {
			t.Fatalf("node %d still serves the token replaced by login: %v", in.node+1, got)
		}
	}

	// Concurrent requests of the visitor, spread over the three nodes,
	// each setting a key of its own: merge keeps them all.
	const concurrent = 30
	var wg sync.WaitGroup
	errs := make(chan error, concurrent)
	for i := range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := v.do(ctx, ins[i%3], "POST", "/set", url.Values{"k": {fmt.Sprintf("c%d", i)}, "v": {"x"}})
			if err != nil || code != http.StatusOK {
				errs <- fmt.Errorf("concurrent POST /set %d on node %d: %d %q %v", i, i%3+1, code, body, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v.current() != tok {
		t.Fatal("a concurrent request replaced the visitor's token")
	}
	for _, in := range ins {
		got := v.values(t, in)
		for i := range concurrent {
			if got[fmt.Sprintf("c%d", i)] != "x" {
				t.Fatalf("node %d: key c%d of a concurrent request is missing; the session holds %d keys", in.node+1, i, len(got))
			}
		}
	}
	var conflicts, retries uint64
	for _, in := range ins {
		s := in.store.Stats()
		conflicts += s.Conflicts
		retries += s.Retries
		if s.ConflictFailures > 0 {
			t.Errorf("node %d: %d saves gave up with ErrConflict", in.node+1, s.ConflictFailures)
		}
	}
	t.Logf("%d concurrent requests over 3 nodes: %d conflicts merged, %d statements retried", concurrent, conflicts, retries)

	// Logout on node 3 ends the session everywhere.
	v.post(t, ins[2], "/logout")
	if v.current() != "" {
		t.Fatal("logout did not expire the cookie")
	}
	for _, in := range ins {
		ended := &visitor{token: tok}
		if got := ended.values(t, in); len(got) != 0 {
			t.Fatalf("node %d still serves a session ended on node 3: %d keys", in.node+1, len(got))
		}
	}
}
