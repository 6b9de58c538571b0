package session_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// fuzzKnownToken names a live session that FuzzMiddlewareCookie stores
// under its hash before fuzzing, so that the seeds and their mutations
// also reach the path of a cookie that loads a row.
const fuzzKnownToken = "FuzzKnownSessionToken0123456789-_abcdefg"

// fuzzPurgeEvery is how many rows the fuzz handler may create before they
// are deleted, so that long runs keep the table small.
const fuzzPurgeEvery = 4096

// FuzzMiddlewareCookie sends arbitrary Cookie headers through the real
// middleware on a SQLite store: the shared SQLite database of the test
// binary, opened once per process, so that an iteration costs at most a
// statement or two. The handler reads the session and, when write is set,
// stores a value. For every input:
//
//   - nothing panics and the answer is never a 500 (the error handler sees
//     no error);
//   - at most one Set-Cookie is sent, and it never carries an incoming
//     value other than the known live token: an unknown token is never
//     adopted;
//   - when no cookie named "visit" holds a well-formed token, the request
//     runs no load (Stats().Loads does not move), and no statement at all
//     unless write is set, when it runs exactly one insert.
//
// With raw false the input is the cookie's value ("visit=" + value); with
// raw true it is the whole header.
func FuzzMiddlewareCookie(f *testing.F) {
	for _, seed := range []struct {
		value      string
		raw, write bool
	}{
		{"", false, false},
		{fuzzKnownToken, false, false},
		{fuzzKnownToken, false, true},
		{"AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_Aa", false, true},
		{strings.Repeat("A", visit.TokenLength-1), false, true},
		{strings.Repeat("A", visit.TokenLength+1), false, false},
		{strings.Repeat("A", visit.TokenLength-1) + "=", false, true},
		{`"` + fuzzKnownToken + `"`, false, false},
		{fuzzKnownToken + "; visit=" + fuzzKnownToken, false, false},
		{"visit=" + fuzzKnownToken, true, true},
		{"visit=x; visit=" + fuzzKnownToken, true, false},
		{"visit=; visit=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_Aa", true, true},
		{"other=" + fuzzKnownToken, true, true},
		{"VISIT=" + fuzzKnownToken, true, false},
		{"visit = " + fuzzKnownToken, true, false},
		{"visit=" + fuzzKnownToken + "\x00", true, false},
		{"visit=\xff\xfe", true, true},
		{strings.Repeat("visit=a;", 200), true, false},
		{";;;=;=", true, false},
	} {
		f.Add(seed.value, seed.raw, seed.write)
	}

	tg := testdb.Get(f, "sqlite")
	tab := tg.CreateTable(f)
	store, err := session.Open(context.Background(), tg.DB, tg.Dialect, session.WithTable(tab))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	now := time.Now().UTC().Truncate(time.Microsecond)
	knownKey := visit.HashToken(fuzzKnownToken)
	if _, err := tg.DB.Exec("INSERT INTO "+tg.Dialect.Quote(tab.Name)+" (visit_key, session_data, created, expiry, version) VALUES (?, NULL, ?, ?, 1)",
		knownKey, tg.Dialect.EncodeTime(now), tg.Dialect.EncodeTime(now.Add(store.IdleTimeout()))); err != nil {
		f.Fatal(err)
	}
	var handlerErr atomic.Pointer[error]
	mw, err := session.NewMiddleware(context.Background(), store, session.MiddlewareOptions{
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			handlerErr.Store(&err)
			http.Error(w, "session error", http.StatusInternalServerError)
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { mw.Close() })
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n := s.GetInt("n")
		if r.Header.Get("X-Write") == "1" {
			s.Set("n", n+1)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	var created int

	f.Fuzz(func(t *testing.T, value string, raw, write bool) {
		header := value
		if !raw {
			header = "visit=" + value
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Cookie", header)
		if write {
			req.Header.Set("X-Write", "1")
		}
		incoming := req.CookiesNamed("visit")
		wellFormed, known := false, false
		for _, c := range incoming {
			if _, err := visit.ParseToken(c.Value); err == nil {
				// The middleware uses the first well-formed one.
				wellFormed, known = true, c.Value == fuzzKnownToken
				break
			}
		}

		handlerErr.Store(nil)
		before := store.Stats()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		after := store.Stats()

		if p := handlerErr.Load(); p != nil {
			t.Fatalf("cookie header %q: error handler got %v", header, *p)
		}
		if rec.Code != http.StatusNoContent {
			t.Fatalf("cookie header %q: status %d, want %d", header, rec.Code, http.StatusNoContent)
		}
		set := rec.Result().Cookies()
		if len(set) > 1 {
			t.Fatalf("cookie header %q: %d Set-Cookie headers, want at most one", header, len(set))
		}
		for _, c := range set {
			if c.Value == fuzzKnownToken && known {
				continue // the live session's cookie, sent again with its new expiry
			}
			if c.Value == header || c.Value == value {
				t.Fatalf("cookie header %q: the Set-Cookie adopted the input", header)
			}
			for _, in := range incoming {
				if c.Value == in.Value {
					t.Fatalf("cookie header %q: the Set-Cookie adopted an incoming token", header)
				}
			}
			if _, err := visit.ParseToken(c.Value); err != nil {
				t.Fatalf("cookie header %q: Set-Cookie value %q is not a token", header, c.Value)
			}
		}
		if !wellFormed {
			if after.Loads != before.Loads {
				t.Fatalf("cookie header %q holds no well-formed token, yet %d loads ran", header, after.Loads-before.Loads)
			}
			wantInserts := uint64(0)
			if write {
				wantInserts = 1
			}
			if d := after.Inserts - before.Inserts; d != wantInserts || after.Updates != before.Updates || after.Touches != before.Touches {
				t.Fatalf("cookie header %q holds no well-formed token: %d inserts, %d updates, %d touches; want %d, 0, 0",
					header, d, after.Updates-before.Updates, after.Touches-before.Touches, wantInserts)
			}
			if write && len(set) != 1 {
				t.Fatalf("cookie header %q: a new session was written but %d cookies were sent", header, len(set))
			}
		}
		if !known && !write && len(set) != 0 {
			t.Fatalf("cookie header %q: a visitor without a live session who stored nothing got a cookie", header)
		}

		if created += int(after.Inserts - before.Inserts); created >= fuzzPurgeEvery {
			created = 0
			if _, err := tg.DB.Exec("DELETE FROM "+tg.Dialect.Quote(tab.Name)+" WHERE visit_key <> ?", knownKey); err != nil {
				t.Fatal(err)
			}
		}
	})
}
