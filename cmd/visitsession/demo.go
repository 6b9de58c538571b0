package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

var demoCommand = command{
	name:    "demo",
	summary: "run the demo web app: visit counter, language, login and logout",
	run:     runDemo,
}

// demoDBFile is the SQLite file the demo creates in the working directory
// when no --dsn is given.
const demoDBFile = "visitsession-demo.db"

//go:embed demo/index.html
var demoFiles embed.FS

var demoPage = template.Must(template.ParseFS(demoFiles, "demo/index.html"))

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: visitsession demo [--addr 127.0.0.1:8080] [--driver D --dsn DSN] [--table NAME] [--secure]")
		fmt.Fprintln(stderr, "Serves a small web app that keeps its sessions in the visit table: a visit counter,")
		fmt.Fprintln(stderr, "a preferred language, and login and logout showing the key renewal. Without --dsn it")
		fmt.Fprintln(stderr, "uses the SQLite file "+demoDBFile+" in the working directory. The table is created")
		fmt.Fprintln(stderr, "or upgraded at start. SIGINT or SIGTERM stops it gracefully.")
		fs.PrintDefaults()
	}
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	secure := fs.Bool("secure", false, "mark the cookie Secure: only when the demo is reached over https")
	var f dbFlags
	f.register(fs, "sqlite", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "visitsession demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	tab, err := f.visitTable()
	if err != nil {
		fmt.Fprintf(stderr, "visitsession demo: %v\n", err)
		return 2
	}
	where := "the database given by --dsn"
	if f.dsn == "" {
		_, d, err := driverFor(f.driver)
		if err != nil {
			fmt.Fprintf(stderr, "visitsession demo: %v\n", err)
			return 2
		}
		if d.Name() != "sqlite" {
			fmt.Fprintf(stderr, "visitsession demo: --dsn is required with --driver %s\n", f.driver)
			return 2
		}
		f.dsn = dialect.SQLiteFileDSN(demoDBFile)
		where = "./" + demoDBFile
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	db, d, err := f.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "visitsession demo: %v\n", err)
		return 1
	}
	defer db.Close()
	// The demo owns its table: create or upgrade it.
	if ran, err := visit.Migrate(ctx, db, d, tab); err != nil {
		fmt.Fprintf(stderr, "visitsession demo: %v\n", err)
		return 1
	} else if len(ran) > 0 {
		logger.Info("demo: visit table ready", "table", tab.Name, "statements", len(ran))
	}
	store, err := session.Open(ctx, db, d, session.WithTable(tab), session.WithLogger(logger))
	if err != nil {
		fmt.Fprintf(stderr, "visitsession demo: %v\n", err)
		return 1
	}
	defer store.Close()
	mw, err := session.NewMiddleware(ctx, store, session.MiddlewareOptions{
		Cookie: session.CookieOptions{Insecure: !*secure},
		Logger: logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "visitsession demo: %v\n", err)
		return 2
	}
	defer mw.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "visitsession demo: %v\n", err)
		return 1
	}
	srv := &http.Server{
		Handler:           mw.Wrap(newDemoApp(store, d.Name()+", table "+tab.Name, logger)),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "visitsession demo: listening on http://%s/ (%s, %s, table %s); stop with Ctrl-C\n",
		ln.Addr(), d.Name(), where, tab.Name)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "visitsession demo: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		fmt.Fprintf(stderr, "visitsession demo: shutdown: %v\n", err)
		return 1
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "visitsession demo: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "visitsession demo: stopped")
	return 0
}

// demoLanguage is one language the demo greets in.
type demoLanguage struct {
	Code, Name, Hello string
	Selected          bool
}

var demoLanguages = []demoLanguage{
	{Code: "en", Name: "English", Hello: "Hello"},
	{Code: "de", Name: "Deutsch", Hello: "Hallo"},
	{Code: "fr", Name: "Français", Hello: "Bonjour"},
	{Code: "es", Name: "Español", Hello: "Hola"},
	{Code: "it", Name: "Italiano", Hello: "Ciao"},
}

func findLanguage(code string) (demoLanguage, bool) {
	for _, l := range demoLanguages {
		if l.Code == code {
			return l, true
		}
	}
	return demoLanguages[0], false
}

// demoApp is the demo's handlers. Every handler reaches the session with
// session.FromContext; the middleware around the app saves it.
type demoApp struct {
	store    *session.Store
	database string
	logger   *slog.Logger
}

func newDemoApp(store *session.Store, database string, logger *slog.Logger) http.Handler {
	a := &demoApp{store: store, database: database, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.index)
	mux.HandleFunc("GET /state", a.state)
	mux.HandleFunc("POST /language", a.language)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	return mux
}

// fingerprint returns the first characters of the hash of the session's
// token, enough to see it change and nothing an attacker could use; "" for
// a session without a token.
func fingerprint(s *session.Session) string {
	tok := s.Token()
	if tok == "" {
		return ""
	}
	return visit.HashToken(tok)[:6]
}

// preferredLanguage returns the session's language, else the first of
// the request's Accept-Language the demo knows, else English.
func preferredLanguage(s *session.Session, r *http.Request) demoLanguage {
	if l, ok := findLanguage(s.GetString("lang")); ok {
		return l
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		primary, _, _ := strings.Cut(tag, "-")
		if l, ok := findLanguage(strings.ToLower(primary)); ok {
			return l
		}
	}
	return demoLanguages[0]
}

func (a *demoApp) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.logger.ErrorContext(r.Context(), "demo: "+what, "error", err)
	http.Error(w, what, http.StatusInternalServerError)
}

// index counts the visit and shows the session.
func (a *demoApp) index(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	visits := s.GetInt("visits") + 1
	s.Set("visits", visits)
	flash, _ := s.Pop("flash").(string)
	// Saved here, rather than by the middleware before the first byte, so
	// that the page can show the key of a session written just now.
	if err := a.store.Save(r.Context(), s); err != nil {
		a.fail(w, r, "could not save the session", err)
		return
	}
	lang := preferredLanguage(s, r)
	langs := make([]demoLanguage, len(demoLanguages))
	for i, l := range demoLanguages {
		l.Selected = l.Code == lang.Code
		langs[i] = l
	}
	v := session.CurrentVisit(r.Context())
	view := struct {
		Hello, Lang, User, Flash, Session, Database string
		Visits                                      int
		Created, Expiry                             string
		Languages                                   []demoLanguage
	}{
		Hello: lang.Hello, Lang: lang.Code, User: s.GetString("user"), Flash: flash,
		Session: fingerprint(s), Database: a.database, Visits: visits,
		Created: v.Created.Local().Format(time.DateTime), Expiry: v.Expiry.Local().Format(time.DateTime),
		Languages: langs,
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := demoPage.Execute(w, view); err != nil {
		a.logger.ErrorContext(r.Context(), "demo: render", "error", err)
	}
}

// state shows the session as plain text, for scripts; it changes nothing.
func (a *demoApp) state(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "visits=%d\nlang=%s\nuser=%s\nsession=%s\n",
		s.GetInt("visits"), preferredLanguage(s, r).Code, s.GetString("user"), fingerprint(s))
}

// language stores the preferred language.
func (a *demoApp) language(w http.ResponseWriter, r *http.Request) {
	l, ok := findLanguage(r.PostFormValue("lang"))
	if !ok {
		http.Error(w, "unknown language", http.StatusBadRequest)
		return
	}
	session.FromContext(r.Context()).Set("lang", l.Code)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// login records the user and renews the session's key: a key that an
// attacker planted or saw before the login stops working.
func (a *demoApp) login(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" || len(name) > 40 || strings.IndexFunc(name, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
		http.Error(w, "a name of 1 to 40 printable characters is required", http.StatusBadRequest)
		return
	}
	s := session.FromContext(r.Context())
	s.Set("user", name)
	if before := fingerprint(s); before != "" {
		s.Set("flash", "Logged in. The session key changed from "+before+"… to a new one; your data stayed.")
	} else {
		s.Set("flash", "Logged in with a new session key.")
	}
	// Renew writes the pending values together with the new key.
	if err := a.store.Renew(r.Context(), s); err != nil {
		a.fail(w, r, "could not renew the session", err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout ends the visit: the row is ended and the cookie expired.
func (a *demoApp) logout(w http.ResponseWriter, r *http.Request) {
	if err := a.store.Destroy(r.Context(), session.FromContext(r.Context())); err != nil {
		a.fail(w, r, "could not end the session", err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
