package session

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
)

// responseWriter is the ResponseWriter the wrapped handler gets: it saves
// the session before anything goes out.
type responseWriter struct {
	http.ResponseWriter
	rs *requestState
}

// WriteHeader saves the session and sets its cookie, then writes the
// status. Informational statuses other than 101 pass through: the final
// response is still to come.
func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.rs.start() != nil {
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write saves the session and sets its cookie before the first bytes.
func (w *responseWriter) Write(b []byte) (int, error) {
	if err := w.rs.start(); err != nil {
		return 0, err
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps the underlying writer's io.ReaderFrom (sendfile) usable.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if err := w.rs.start(); err != nil {
		return 0, err
	}
	return io.Copy(w.ResponseWriter, src)
}

// FlushError saves the session, then flushes. http.ResponseController
// calls it in preference to unwrapping.
func (w *responseWriter) FlushError() error {
	if err := w.rs.start(); err != nil {
		return err
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush is FlushError for callers that use http.Flusher.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// Hijack saves the session, then hands over the connection. A cookie the
// session needed cannot be sent any more: that is reported to the error
// handler as ErrResponseStarted. After a successful Hijack the middleware
// writes nothing.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if err := w.rs.start(); err != nil {
		return nil, nil, err
	}
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	rs := w.rs
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.cookieNeeded {
		rs.lateFailLocked(fmt.Errorf("session: %w: the connection was hijacked before the session cookie could be sent", ErrResponseStarted))
	}
	return conn, brw, nil
}

// Unwrap returns the underlying ResponseWriter, for
// http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
