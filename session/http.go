package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DecodePolicy says what the middleware does with a stored session whose
// data does not decode ([ErrCorrupt]).
type DecodePolicy int

const (
	// DecodeReset replaces the corrupt session by an empty one, keeping its
	// token: the handler sees an empty session and the row's data is
	// cleared when the request ends. Each case is counted in
	// [Stats].DecodeErrors and reported to the store's hooks and logger.
	DecodeReset DecodePolicy = iota
	// DecodeFail fails the request: the error goes to the error handler
	// (by default a 500 response) and the row is left as it is.
	DecodeFail
)

// String returns "reset" or "fail".
func (p DecodePolicy) String() string {
	switch p {
	case DecodeReset:
		return "reset"
	case DecodeFail:
		return "fail"
	}
	return fmt.Sprintf("DecodePolicy(%d)", int(p))
}

// MiddlewareOptions configures [NewMiddleware]. The zero value loads
// sessions lazily, creates rows only for sessions that hold a value,
// writes expiry touches synchronously (at most once per the store's touch
// interval), resets undecodable sessions, and answers errors with a
// logged 500.
type MiddlewareOptions struct {
	// Cookie configures the session cookie.
	// Default: the zero CookieOptions (persistent, Secure, HttpOnly,
	// SameSite=Lax, named "visit", Path "/").
	Cookie CookieOptions
	// TrackAll tracks every visitor, as TurboGears' visit framework does:
	// each request loads the visit (one statement when a cookie came), and
	// a visitor without a live visit gets a row and a cookie at the end of
	// the first request, whether or not anything is stored.
	// Default: false (lazy: a visitor who never stores a value creates no
	// row and gets no cookie, and a request whose handlers never call
	// FromContext or CurrentVisit runs no statement).
	TrackAll bool
	// TouchBatch, when positive, takes expiry-only touches off the request
	// path: a request that changed nothing and whose session is due for a
	// touch (see the store's WithTouchInterval) queues it, and a
	// background flusher writes the queued touches every TouchBatch, each
	// session once, and flushes the queue when the middleware's context
	// ends or Close is called. When the queue holds 10,000 sessions, or
	// after Close, touches are written synchronously again.
	// Default: 0 (a due touch is written by the request itself).
	TouchBatch time.Duration
	// DecodeErrors says what happens when the stored session does not
	// decode.
	// Default: DecodeReset.
	DecodeErrors DecodePolicy
	// ErrorHandler receives every error of the middleware: a failed load
	// or save, a decode error under DecodeFail, and ErrResponseStarted.
	// It runs on the request's goroutine. When the response has not
	// started, w is the real ResponseWriter: whatever the handler writes
	// replaces the response (later writes of the wrapped handler are
	// dropped), and if it writes nothing the response goes on without a
	// cookie. When the response has started, w discards what is written.
	// Errors never contain a token or a key.
	// Default: log the error to Logger at level Error (Info when the
	// client went away) and answer 500 Internal Server Error when the
	// response has not started.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives the default error handler's records and the
	// failures of batched touches.
	// Default: slog.Default() at the time of NewMiddleware.
	Logger *slog.Logger
}

// Middleware keeps the sessions of an http.Handler in a [Store]. Create it
// with [NewMiddleware], wrap handlers with [Middleware.Wrap], and reach
// the session downstream with [FromContext]. It is safe for concurrent
// use.
//
// For each request, Wrap binds the session named by the cookie, loaded
// lazily on its first use. It saves the session just before the response
// starts: at the first Write, WriteHeader, Flush or Hijack, or when the
// handler returns having written nothing. It then sends at most one
// Set-Cookie: for a session written for the first time, a renewed token,
// an ended session (an expired cookie), or, for persistent cookies, an
// expiry that moved. Responses to requests that used the session carry
// "Vary: Cookie", and responses carrying a cookie
// `Cache-Control: no-cache="Set-Cookie"`.
//
// The wrapped ResponseWriter has Unwrap, so http.ResponseController works
// through it; its Flush, FlushError and Hijack save the session first.
type Middleware struct {
	store    *Store
	cookie   cookieConfig
	trackAll bool
	decode   DecodePolicy
	onError  func(http.ResponseWriter, *http.Request, error)
	logger   *slog.Logger
	batch    *touchBatcher // nil when touches are written by the request
}

// NewMiddleware returns a Middleware over store. Invalid options (a
// cookie name, path or domain that cannot be sent, a __Host- cookie that
// is not Secure or has a Domain or a Path other than "/", a __Secure- or
// SameSite=None cookie that is not Secure, a negative TouchBatch, an
// unknown DecodePolicy) give an error wrapping [ErrMiddlewareOptions].
//
// ctx bounds the background flusher of TouchBatch: when it ends, the
// flusher writes the queued touches and stops. Close does the same and
// waits. Without TouchBatch there is no background work and ctx is not
// kept.
func NewMiddleware(ctx context.Context, store *Store, opts MiddlewareOptions) (*Middleware, error) {
	if store == nil {
		return nil, fmt.Errorf("session: new middleware: %w: store is nil", ErrMiddlewareOptions)
	}
	ck, err := opts.Cookie.resolve()
	if err != nil {
		return nil, fmt.Errorf("session: new middleware: %w: %w", ErrMiddlewareOptions, err)
	}
	switch {
	case opts.TouchBatch < 0:
		return nil, fmt.Errorf("session: new middleware: %w: TouchBatch %v is negative", ErrMiddlewareOptions, opts.TouchBatch)
	case opts.DecodeErrors != DecodeReset && opts.DecodeErrors != DecodeFail:
		return nil, fmt.Errorf("session: new middleware: %w: unknown decode policy %d", ErrMiddlewareOptions, int(opts.DecodeErrors))
	}
	m := &Middleware{
		store:    store,
		cookie:   ck,
		trackAll: opts.TrackAll,
		decode:   opts.DecodeErrors,
		onError:  opts.ErrorHandler,
		logger:   opts.Logger,
	}
	if m.logger == nil {
		m.logger = slog.Default()
	}
	if m.onError == nil {
		m.onError = m.defaultErrorHandler
	}
	if opts.TouchBatch > 0 {
		m.batch = newTouchBatcher(ctx, store, opts.TouchBatch, m.logger)
	}
	return m, nil
}

// Close writes the queued touches and stops the background flusher of
// TouchBatch, waiting for it. It does not close the Store: close the
// Middleware first. The Middleware keeps working after Close, writing
// touches synchronously. Close is idempotent and always returns nil.
func (m *Middleware) Close() error {
	if m.batch != nil {
		m.batch.close()
	}
	return nil
}

// Store returns the store the middleware keeps sessions in.
func (m *Middleware) Store() *Store { return m.store }

func (m *Middleware) defaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	level := slog.LevelError
	if r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
		level = slog.LevelInfo // the client went away: not the server's fault
	}
	m.logger.Log(r.Context(), level, "session: request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
}

// Wrap returns next with sessions: see [Middleware]. It works with any
// router, around it or around single routes.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(next, w, r)
	})
}

type ctxKey struct{}

func (m *Middleware) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	token, present := m.cookie.read(r)
	rs := &requestState{m: m, w: w, incoming: token, hadCookie: present}
	m.store.initLazy(&rs.session, r.Context(), token)
	rs.ctx = requestContext{Context: r.Context(), rs: rs}
	r = r.WithContext(&rs.ctx)
	rs.r = r
	finished := false
	defer func() {
		if !finished {
			// A panic or Goexit: never save half a request, but give back
			// a locked session's row lock and connection.
			m.store.Release(context.WithoutCancel(r.Context()), &rs.session)
		}
	}()
	rs.rw = responseWriter{ResponseWriter: w, rs: rs}
	next.ServeHTTP(&rs.rw, r)
	finished = true
	rs.finish()
}

// FromContext returns the session of the request whose context is ctx,
// as bound by [Middleware.Wrap]; it is loaded on first use. Outside the
// middleware (or for a nil ctx) it returns a new empty session that
// belongs to no request: reads find nothing, and what is set is not saved
// unless passed to Store.Save. It never returns nil.
func FromContext(ctx context.Context) *Session {
	if rs := requestFrom(ctx); rs != nil {
		rs.used.Store(true)
		return &rs.session
	}
	return &Session{}
}

func requestFrom(ctx context.Context) *requestState {
	if ctx == nil {
		return nil
	}
	rs, _ := ctx.Value(ctxKey{}).(*requestState)
	return rs
}

// requestContext is a request's context behind the middleware: the
// incoming one, with the request's state as the value of ctxKey. It is
// what context.WithValue would make, held in the request's state so that
// it needs no allocation of its own.
type requestContext struct {
	context.Context
	rs *requestState
}

// Value implements context.Context.
func (c *requestContext) Value(key any) any {
	if key == (ctxKey{}) {
		return c.rs
	}
	return c.Context.Value(key)
}

// requestState is the middleware's bookkeeping for one request.
type requestState struct {
	ctx       requestContext // the request's context
	m         *Middleware
	w         http.ResponseWriter // the real writer
	rw        responseWriter      // the writer the handler gets
	r         *http.Request
	session   Session // the request's session, allocated with its state
	incoming  string  // well-formed token of the request's cookie, or ""
	hadCookie bool    // a cookie of the configured name came
	used      atomic.Bool

	arrival    sync.Once
	arrivedNew bool

	started atomic.Bool // set once the response has started

	mu           sync.Mutex
	committed    bool
	abortErr     error  // set when the error handler replaced the response
	cookieNeeded bool   // the cookie carries a new token or ends the session
	failed       bool   // the commit failed and went to the error handler
	tokenAt      string // the session's token as the cookie knows it
	destroyedAt  bool
	checkedLate  bool // the late check ran
}

// noteArrival records, once, whether the request came without a live
// visit. It loads the session.
func (rs *requestState) noteArrival() {
	rs.arrival.Do(func() { rs.arrivedNew = rs.session.IsNew() })
}

// start commits the session if that has not happened and marks the
// response as started. It returns an error when the error handler has
// replaced the response.
func (rs *requestState) start() error {
	if rs.started.Load() {
		return rs.abortErr // written before started was set
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if !rs.committed {
		rs.commitLocked()
	}
	rs.started.Store(true)
	return rs.abortErr
}

// finish runs after the handler returned normally.
func (rs *requestState) finish() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if !rs.committed {
		rs.commitLocked()
		return
	}
	rs.lateCheckLocked()
}

// errReplaced is what writes of the wrapped handler get once the error
// handler has written the response.
var errReplaced = errors.New("session: the error handler replaced the response")

// failLocked hands err to the error handler while the response has not
// started.
func (rs *requestState) failLocked(err error) {
	rs.failed = true
	rec := &recordingWriter{ResponseWriter: rs.w}
	rs.m.onError(rec, rs.r, err)
	if rec.wrote {
		rs.abortErr = errReplaced
	}
}

// lateFailLocked hands err to the error handler after the response has
// started.
func (rs *requestState) lateFailLocked(err error) {
	rs.m.onError(discardWriter{header: http.Header{}}, rs.r, err)
}

// commitLocked saves the session and sets the cookie, once, before the
// response starts.
func (rs *requestState) commitLocked() {
	rs.committed = true
	rs.tokenAt = rs.incoming
	m := rs.m
	if !rs.used.Load() && !m.trackAll {
		return
	}
	rs.used.Store(true)
	varyCookie(rs.w.Header())
	sess := &rs.session
	ctx := context.WithoutCancel(rs.r.Context())
	if err := sess.Err(); err != nil {
		if !errors.Is(err, ErrCorrupt) || m.decode == DecodeFail {
			m.store.Release(ctx, sess)
			rs.failLocked(err)
			return
		}
		if !sess.Changed() {
			sess.Clear() // DecodeReset: the save below replaces the bad data
		}
	}
	rs.noteArrival()
	before := sess.Expiry()
	expiry, err := rs.saveLocked(ctx, sess)
	if err != nil {
		rs.failLocked(err)
		return
	}
	tok := sess.Token()
	rs.tokenAt, rs.destroyedAt = tok, sess.Destroyed()
	switch {
	case tok == "":
		if sess.Destroyed() && rs.hadCookie {
			rs.setCookieLocked(m.cookie.expired())
			rs.cookieNeeded = true
		}
	case tok != rs.incoming:
		rs.setCookieLocked(m.cookie.forToken(tok, expiry, m.store.trackingNow()))
		rs.cookieNeeded = true
	case m.cookie.persistent && expiry.After(before):
		rs.setCookieLocked(m.cookie.forToken(tok, expiry, m.store.trackingNow()))
	}
}

// saveLocked writes the session, or queues its touch, and returns the
// expiry the cookie should carry.
func (rs *requestState) saveLocked(ctx context.Context, sess *Session) (time.Time, error) {
	m := rs.m
	if m.batch != nil && !sess.Changed() && !sess.IsNew() && !sess.Locked() {
		due, exp := m.store.trackingTouchDue(sess)
		if !due {
			return sess.Expiry(), nil
		}
		if m.batch.add(sess) {
			return exp, nil
		}
	}
	if err := m.store.Save(ctx, sess); err != nil {
		return time.Time{}, err
	}
	if m.trackAll && sess.IsNew() && !sess.Destroyed() {
		if err := m.store.trackingInsert(ctx, sess); err != nil {
			return time.Time{}, err
		}
	}
	return sess.Expiry(), nil
}

// setCookieLocked sends the Set-Cookie header cookie, which caches must
// not store with the response.
func (rs *requestState) setCookieLocked(cookie string) {
	h := rs.w.Header()
	h.Add("Set-Cookie", cookie)
	h.Add("Cache-Control", `no-cache="Set-Cookie"`)
}

// lateCheckLocked reports, and where possible saves, what the handler
// changed in the session after the response started.
func (rs *requestState) lateCheckLocked() {
	if rs.checkedLate || rs.failed || !rs.used.Load() {
		return
	}
	rs.checkedLate = true
	sess := &rs.session
	var what string
	switch {
	case sess.Destroyed() && !rs.destroyedAt && (rs.tokenAt != "" || rs.hadCookie):
		what = "ended; the expired cookie could not be sent"
	case sess.Renewed() && sess.Token() != rs.tokenAt:
		what = "renewed; the new token could not be sent and the visitor lost the session"
	case !sess.Changed():
		return
	case sess.IsNew() || sess.Token() != rs.tokenAt:
		what = "written for the first time; the cookie could not be sent, so nothing was saved"
	default:
		ctx := context.WithoutCancel(rs.r.Context())
		if err := rs.m.store.Save(ctx, sess); err != nil {
			rs.lateFailLocked(fmt.Errorf("session: %w: values changed, and saving them failed: %w", ErrResponseStarted, err))
			return
		}
		what = "values changed; they were saved"
	}
	rs.lateFailLocked(fmt.Errorf("session: %w: %s", ErrResponseStarted, what))
}

// varyCookie adds Cookie to the Vary header unless it, or *, is there.
// "Vary" is a canonical key: the header is read and written in place.
func varyCookie(h http.Header) {
	vary := h["Vary"]
	for _, v := range vary {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Cookie") {
				return
			}
		}
	}
	h["Vary"] = append(vary, "Cookie")
}

// recordingWriter notes whether the error handler wrote a response.
type recordingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *recordingWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// discardWriter is the error handler's writer once the response started.
type discardWriter struct{ header http.Header }

func (w discardWriter) Header() http.Header         { return w.header }
func (w discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w discardWriter) WriteHeader(int)             {}
