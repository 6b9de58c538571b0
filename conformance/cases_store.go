package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// openMissingTable: Open on a table that does not exist fails with
// ErrSchema naming the table, and creates nothing.
func openMissingTable(ctx context.Context, e *env) error {
	t := e.scratchName()
	_, err := session.Open(ctx, e.db, e.d, session.WithTable(t))
	if !errors.Is(err, session.ErrSchema) {
		return fmt.Errorf("Open on a missing table gave %v, want an error wrapping session.ErrSchema", err)
	}
	if !strings.Contains(err.Error(), t.Name) {
		return fmt.Errorf("Open on a missing table: the error does not name the table: %v", err)
	}
	in, err := visit.Inspect(ctx, e.db, e.d, t)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if in.Exists {
		return errors.New("Open created the missing table; it must never create or alter tables")
	}
	return nil
}

// openMissingColumn: Open on a table that lacks columns fails with
// ErrSchema naming the first missing column and the statement that adds it.
func openMissingColumn(ctx context.Context, e *env) error {
	t, err := e.scratchTable(ctx)
	if err != nil {
		return err
	}
	dropColumn := func(c visit.Column) error {
		_, err := e.db.ExecContext(ctx, "ALTER TABLE "+e.d.Quote(t.Name)+" DROP COLUMN "+e.d.Quote(t.ColumnName(c)))
		if err != nil {
			return fmt.Errorf("set up: drop the %s column: %w", c, err)
		}
		return nil
	}
	for _, c := range []visit.Column{visit.ColVersion, visit.ColData} {
		if err := dropColumn(c); err != nil {
			return err
		}
		_, err := session.Open(ctx, e.db, e.d, session.WithTable(t))
		name := t.ColumnName(c)
		switch {
		case !errors.Is(err, session.ErrSchema):
			return fmt.Errorf("Open on a table without its %s column gave %v, want an error wrapping session.ErrSchema", c, err)
		case !strings.Contains(err.Error(), strconv.Quote(name)):
			return fmt.Errorf("Open on a table without its %s column: the error does not name the column %q: %v", c, name, err)
		case !strings.Contains(err.Error(), e.d.AddColumn(t, c)):
			return fmt.Errorf("Open on a table without its %s column: the error does not give the statement that adds it: %v", c, err)
		}
	}
	return nil
}

// loadMalformedToken: a malformed token gives a new session, costs no
// query and is never adopted.
func loadMalformedToken(ctx context.Context, e *env) error {
	st, err := e.caseStore(ctx)
	if err != nil {
		return err
	}
	valid := visit.NewToken()
	malformed := []struct{ what, tok string }{
		{"an empty token", ""},
		{"a 39-character token", valid[:39]},
		{"a 41-character token", valid + "A"},
		{"a token with a quote", valid[:39] + "'"},
		{"a token with standard base64 characters", valid[:38] + "+/"},
		{"a token with padding", valid[:39] + "="},
		{"a token with a space", valid[:39] + " "},
		{"a token with a NUL byte", valid[:39] + "\x00"},
		{"a token with a non-ASCII letter", valid[:38] + "é"},
		{"a token with SQL in it", strings.Repeat("x", 10) + "' OR '1'='1' -- " + strings.Repeat("x", 14)},
	}
	for _, m := range malformed {
		sess, err := st.Load(ctx, m.tok)
		if err != nil {
			return fmt.Errorf("Load of %s gave an error: %w", m.what, err)
		}
		if !sess.IsNew() || sess.Token() != "" {
			return fmt.Errorf("Load of %s did not give a new session without a token", m.what)
		}
		sess.Set("k", "v")
		if err := st.Save(ctx, sess); err != nil {
			return fmt.Errorf("save after loading %s: %w", m.what, err)
		}
		if sess.Token() == m.tok {
			return fmt.Errorf("the session loaded with %s was saved under that token: incoming tokens must never be adopted", m.what)
		}
	}
	if n := st.Stats().Loads; n != 0 {
		return fmt.Errorf("loading malformed tokens ran %d queries; they must be rejected before any query", n)
	}
	return nil
}

// loadUnknownToken: a well-formed token with no row gives a new session,
// which is saved under a fresh token, never under the unknown one.
func loadUnknownToken(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	st, err := e.open(ctx, e.db, t)
	if err != nil {
		return err
	}
	unknown := visit.NewToken()
	e.trackToken(t, unknown)
	sess, err := st.Load(ctx, unknown)
	if err != nil {
		return fmt.Errorf("Load of an unknown token: %w", err)
	}
	if !sess.IsNew() || sess.Token() != "" {
		return errors.New("Load of an unknown token did not give a new session without a token")
	}
	sess.Set("k", "v")
	if err := st.Save(ctx, sess); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if sess.Token() == unknown || sess.Token() == "" {
		return errors.New("a session loaded with an unknown token was saved under that token: incoming tokens must never be adopted")
	}
	if r, err := e.rowOf(ctx, t, unknown); err != nil {
		return err
	} else if r.exists {
		return errors.New("a row exists under the unknown token's key after the save: incoming tokens must never be adopted")
	}
	return nil
}

// loadExpiredToken: the token of an expired session, swept or not, gives
// a new session; the old row is left as it was.
func loadExpiredToken(ctx context.Context, e *env) error {
	t, clk, st, err := e.clockedStore(ctx, session.WithIdleTimeout(time.Hour))
	if err != nil {
		return err
	}
	old, err := st.saveNew(ctx, map[string]any{"user": "alice"})
	if err != nil {
		return err
	}
	tok := old.Token()
	before, err := e.rowOf(ctx, t, tok)
	if err != nil {
		return err
	}
	clk.Add(2 * time.Hour)
	sess, err := st.Load(ctx, tok)
	if err != nil {
		return fmt.Errorf("Load of an expired token: %w", err)
	}
	if !sess.IsNew() || sess.Has("user") {
		return fmt.Errorf("Load returned a session an hour past its expiry (%s, now %s): Load must require expiry > now", us(before.expiry), us(clk.Now()))
	}
	sess.Set("user", "mallory")
	if err := st.Save(ctx, sess); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if sess.Token() == tok {
		return errors.New("a session loaded with an expired token was saved under that token: expired tokens must never be adopted")
	}
	after, err := e.rowOf(ctx, t, tok)
	if err != nil {
		return err
	}
	if !bytes.Equal(after.data, before.data) || after.version != before.version || !after.expiry.Equal(before.expiry) {
		return errors.New("the expired session's row changed after its token was loaded and a new session saved")
	}
	return nil
}

// loadLazy: a lazy session costs no query until it is used, and then
// loads as Load does.
func loadLazy(ctx context.Context, e *env) error {
	st, saved, err := e.caseSession(ctx, map[string]any{"user": "alice"})
	if err != nil {
		return err
	}
	lazy := st.Lazy(ctx, saved.Token())
	if n := st.Stats().Loads; n != 0 {
		return fmt.Errorf("Lazy ran %d queries before the session was used, want none", n)
	}
	if got := lazy.GetString("user"); got != "alice" {
		return fmt.Errorf("lazy session read %q, want %q", got, "alice")
	}
	if n := st.Stats().Loads; n != 1 {
		return fmt.Errorf("using a lazy session ran %d loads, want 1", n)
	}
	lazy.GetString("user")
	if n := st.Stats().Loads; n != 1 {
		return fmt.Errorf("using a lazy session twice ran %d loads, want 1", n)
	}
	return nil
}

// loadCancelled: a load, and a save, under a context already cancelled
// give an error wrapping context.Canceled, and the row stays as it was.
func loadCancelled(ctx context.Context, e *env) error {
	st, saved, err := e.caseSession(ctx, map[string]any{"user": "alice"})
	if err != nil {
		return err
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.Load(cancelled, saved.Token()); !errors.Is(err, context.Canceled) {
		return fmt.Errorf("Load under a cancelled context gave %v, want an error wrapping context.Canceled", err)
	}
	sess, err := st.Load(ctx, saved.Token())
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	sess.Set("user", "bob")
	if err := st.Save(cancelled, sess); !errors.Is(err, context.Canceled) {
		return fmt.Errorf("Save under a cancelled context gave %v, want an error wrapping context.Canceled", err)
	}
	again, err := st.Load(ctx, saved.Token())
	if err != nil {
		return fmt.Errorf("load again: %w", err)
	}
	if got := again.GetString("user"); got != "alice" {
		return fmt.Errorf("after a save under a cancelled context the session holds %q, want %q as before", got, "alice")
	}
	return nil
}

// saveLazyRowCreation: a session is written only once it holds a value.
func saveLazyRowCreation(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	st, err := e.open(ctx, e.db, t)
	if err != nil {
		return err
	}
	empty := st.New()
	if err := st.Save(ctx, empty); err != nil {
		return fmt.Errorf("save of an empty new session: %w", err)
	}
	emptied := st.New()
	emptied.Set("k", "v")
	emptied.Delete("k")
	if err := st.Save(ctx, emptied); err != nil {
		return fmt.Errorf("save of a new session whose only value was deleted: %w", err)
	}
	if empty.Token() != "" || emptied.Token() != "" || !empty.IsNew() || !emptied.IsNew() {
		return errors.New("a new session without values got a token when saved: rows must be created only for sessions holding a value")
	}
	if n := st.Stats().Inserts; n != 0 {
		return fmt.Errorf("saving new sessions without values inserted %d rows, want none", n)
	}
	if !e.cfg.realTable {
		if n, err := e.countAll(ctx, t); err != nil {
			return err
		} else if n != 0 {
			return fmt.Errorf("the table holds %d rows after saving sessions without values, want none", n)
		}
	}
	full, err := st.saveNew(ctx, map[string]any{"k": "v"})
	if err != nil {
		return err
	}
	if r, err := e.rowOf(ctx, t, full.Token()); err != nil {
		return err
	} else if !r.exists || r.data == nil {
		return errors.New("a session holding a value was saved but its row is missing or has no data")
	}
	return nil
}

// saveRoundTrip: what Save writes, Load reads back, with the instants of
// the store's clock to the microsecond and version 1, then 2.
func saveRoundTrip(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	clk := newClock(baseTime)
	opts := []session.Option{session.WithClock(clk.Now), session.WithIdleTimeout(time.Hour)}
	st, err := e.open(ctx, e.db, t, opts...)
	if err != nil {
		return err
	}
	values := map[string]any{"user": int64(42), "name": "Zoë", "roles": []string{"admin", "ops"}, "ok": true}
	sess, err := st.saveNew(ctx, values)
	if err != nil {
		return err
	}
	created := baseTime.Truncate(time.Microsecond)
	r, err := e.rowOf(ctx, t, sess.Token())
	if err != nil {
		return err
	}
	switch {
	case !r.exists:
		return errors.New("no row under the hashed key of the saved session's token")
	case !r.created.Equal(created):
		return fmt.Errorf("created stored as %s, want the clock's %s: microsecond precision lost or time shifted", us(r.created), us(created))
	case !r.expiry.Equal(created.Add(time.Hour)):
		return fmt.Errorf("expiry stored as %s, want %s", us(r.expiry), us(created.Add(time.Hour)))
	case r.version != 1:
		return fmt.Errorf("version of a new row is %d, want 1", r.version)
	}
	// Another store, as another instance of the application would.
	other, err := e.open(ctx, e.db, t, opts...)
	if err != nil {
		return err
	}
	clk.Add(time.Minute)
	l, err := other.Load(ctx, sess.Token())
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if l.IsNew() {
		return errors.New("a saved session did not load")
	}
	if err := sameValues(l.Values(), values); err != nil {
		return fmt.Errorf("loaded values differ: %w", err)
	}
	if !l.Created().Equal(created) || !l.Expiry().Equal(created.Add(time.Hour)) {
		return fmt.Errorf("loaded created %s and expiry %s, want %s and %s", us(l.Created()), us(l.Expiry()), us(created), us(created.Add(time.Hour)))
	}
	l.Set("name", "Zoé")
	if err := other.Save(ctx, l); err != nil {
		return fmt.Errorf("second save: %w", err)
	}
	r, err = e.rowOf(ctx, t, sess.Token())
	if err != nil {
		return err
	}
	if want := clk.Now().Truncate(time.Microsecond).Add(time.Hour); r.version != 2 || !r.expiry.Equal(want) || !r.created.Equal(created) {
		return fmt.Errorf("after a second save: version %d, expiry %s, created %s; want 2, %s, %s",
			r.version, us(r.expiry), us(r.created), us(want), us(created))
	}
	return nil
}

// saveUnchangedWritesNoData: saving a loaded session without changes
// writes nothing within the touch interval, and afterwards only moves
// expiry, leaving data and version alone.
func saveUnchangedWritesNoData(ctx context.Context, e *env) error {
	t, clk, st, err := e.clockedStore(ctx, session.WithIdleTimeout(time.Hour), session.WithTouchInterval(10*time.Minute))
	if err != nil {
		return err
	}
	sess, err := st.saveNew(ctx, map[string]any{"k": "v"})
	if err != nil {
		return err
	}
	before, err := e.rowOf(ctx, t, sess.Token())
	if err != nil {
		return err
	}
	clk.Add(time.Minute)
	l, err := st.Load(ctx, sess.Token())
	if err != nil || l.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", l.IsNew(), err)
	}
	if err := st.Save(ctx, l); err != nil {
		return fmt.Errorf("save of an unchanged session: %w", err)
	}
	after, err := e.rowOf(ctx, t, sess.Token())
	if err != nil {
		return err
	}
	if s := st.Stats(); s.Updates != 0 || s.Touches != 0 {
		return fmt.Errorf("saving an unchanged session within the touch interval ran %d updates and %d touches, want none", s.Updates, s.Touches)
	}
	if !bytes.Equal(after.data, before.data) || after.version != before.version || !after.expiry.Equal(before.expiry) {
		return errors.New("saving an unchanged session within the touch interval changed its row")
	}
	clk.Add(30 * time.Minute)
	l, err = st.Load(ctx, sess.Token())
	if err != nil || l.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", l.IsNew(), err)
	}
	if err := st.Save(ctx, l); err != nil {
		return fmt.Errorf("save of an unchanged session: %w", err)
	}
	touched, err := e.rowOf(ctx, t, sess.Token())
	if err != nil {
		return err
	}
	want := clk.Now().Truncate(time.Microsecond).Add(time.Hour)
	switch s := st.Stats(); {
	case s.Updates != 0:
		return fmt.Errorf("saving an unchanged session ran %d data updates, want none", s.Updates)
	case s.Touches != 1:
		return fmt.Errorf("saving an unchanged session after the touch interval ran %d touches, want 1", s.Touches)
	case !bytes.Equal(touched.data, before.data) || touched.version != before.version:
		return errors.New("a touch changed the session's data or version; it must write only expiry")
	case !touched.expiry.Equal(want):
		return fmt.Errorf("a touch set expiry to %s, want %s", us(touched.expiry), us(want))
	}
	return nil
}

// renewRotatesToken: Renew moves the session to a new token with its data
// and pending changes; the old token stops working at once.
func renewRotatesToken(ctx context.Context, e *env) error {
	t, clk, st, err := e.clockedStore(ctx)
	if err != nil {
		return err
	}
	sess, err := st.saveNew(ctx, map[string]any{"user": "alice"})
	if err != nil {
		return err
	}
	oldTok := sess.Token()
	clk.Add(time.Minute)
	l, err := st.Load(ctx, oldTok)
	if err != nil || l.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", l.IsNew(), err)
	}
	l.Set("role", "admin")
	if err := st.Renew(ctx, l); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	newTok := l.Token()
	if newTok == oldTok || newTok == "" || !l.Renewed() {
		return errors.New("Renew kept the old token")
	}
	if old, err := st.Load(ctx, oldTok); err != nil {
		return fmt.Errorf("load of the old token: %w", err)
	} else if !old.IsNew() {
		return errors.New("the old token still loads the session after Renew")
	}
	if r, err := e.rowOf(ctx, t, oldTok); err != nil {
		return err
	} else if r.exists {
		return errors.New("a row remains under the old token's key after Renew")
	}
	n, err := st.Load(ctx, newTok)
	if err != nil || n.IsNew() {
		return fmt.Errorf("load of the new token: new=%v err=%v", n.IsNew(), err)
	}
	if n.GetString("user") != "alice" || n.GetString("role") != "admin" {
		return fmt.Errorf("the renewed session holds %v, want its old data and the change made before Renew", n.Keys())
	}
	if !n.Created().Equal(baseTime.Truncate(time.Microsecond)) {
		return fmt.Errorf("Renew changed created to %s; the visit started at %s", us(n.Created()), us(baseTime.Truncate(time.Microsecond)))
	}
	return nil
}

// renewGraceWindow: with a renewal grace window, the old key's row becomes
// a forward (version dialect.ForwardVersion) that ends with the window; a
// copy loaded before the renewal saves into the renewed session, a load
// by the old token reaches it, and a touch through the old token does not
// stretch the window.
func renewGraceWindow(ctx context.Context, e *env) error {
	const grace = 10 * time.Second
	t, clk, st, err := e.clockedStore(ctx, session.WithRenewGrace(grace))
	if err != nil {
		return err
	}
	sess, err := st.saveNew(ctx, map[string]any{"user": "alice"})
	if err != nil {
		return err
	}
	oldTok := sess.Token()
	stale, err := st.Load(ctx, oldTok)
	if err != nil || stale.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", stale.IsNew(), err)
	}
	login, err := st.Load(ctx, oldTok)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	login.Set("role", "admin")
	if err := st.Renew(ctx, login); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	newTok := login.Token()
	r, err := e.rowOf(ctx, t, oldTok)
	switch {
	case err != nil:
		return err
	case !r.exists || r.version != dialect.ForwardVersion:
		return fmt.Errorf("the old key's row after a Renew with a grace window: exists=%v version=%d, want a forward (version %d)",
			r.exists, r.version, dialect.ForwardVersion)
	case !r.expiry.Equal(baseTime.Add(grace).Truncate(time.Microsecond)):
		return fmt.Errorf("the forward ends at %s, want the end of the window %s", us(r.expiry), us(baseTime.Add(grace)))
	}
	clk.Add(2 * time.Second)
	stale.Set("cart", int64(3))
	if err := st.Save(ctx, stale); err != nil {
		return fmt.Errorf("save of a copy loaded before the renewal, within the window: %w", err)
	}
	if stale.Token() != newTok {
		return errors.New("the copy loaded before the renewal did not move to the new token")
	}
	if err := st.Touch(ctx, stale); err != nil {
		return fmt.Errorf("touch: %w", err)
	}
	l, err := st.Load(ctx, oldTok)
	if err != nil || l.Token() != newTok {
		return fmt.Errorf("a load by the old token within the window did not reach the renewed session (err %v)", err)
	}
	if l.GetString("role") != "admin" || l.GetInt64("cart") != 3 || l.GetString("user") != "alice" {
		return fmt.Errorf("the renewed session holds %v, want both requests' changes", l.Keys())
	}
	if r, err := e.rowOf(ctx, t, oldTok); err != nil {
		return err
	} else if !r.expiry.Equal(baseTime.Add(grace).Truncate(time.Microsecond)) || r.version != dialect.ForwardVersion {
		return fmt.Errorf("writes through the old token changed the forward: version %d, expiry %s", r.version, us(r.expiry))
	}
	clk.Add(grace)
	if l, err := st.Load(ctx, oldTok); err != nil || !l.IsNew() {
		return fmt.Errorf("a load by the old token after the window: new=%v err=%v, want a new session", l.IsNew(), err)
	}
	return nil
}

// destroyKeepsRow: Destroy ends the session and keeps its row as history,
// with data NULL and expiry set to the moment it ended.
func destroyKeepsRow(ctx context.Context, e *env) error {
	t, clk, st, err := e.clockedStore(ctx)
	if err != nil {
		return err
	}
	sess, err := st.saveNew(ctx, map[string]any{"user": "alice"})
	if err != nil {
		return err
	}
	tok := sess.Token()
	clk.Add(time.Minute)
	l, err := st.Load(ctx, tok)
	if err != nil || l.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", l.IsNew(), err)
	}
	if err := st.Destroy(ctx, l); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	if !l.Destroyed() || !l.IsNew() || l.Token() != "" || l.Len() != 0 {
		return errors.New("after Destroy the session is not new and empty without a token")
	}
	r, err := e.rowOf(ctx, t, tok)
	if err != nil {
		return err
	}
	ended := clk.Now().Truncate(time.Microsecond)
	created := baseTime.Truncate(time.Microsecond)
	switch {
	case !r.exists:
		return errors.New("Destroy deleted the row; by default it must keep it as visit history")
	case r.data != nil:
		return errors.New("Destroy left the session data in the row; it must set it to NULL")
	case r.expiry.After(ended) || r.expiry.Before(created):
		return fmt.Errorf("Destroy set expiry to %s, want an instant between the session's creation %s and the moment it ended %s",
			us(r.expiry), us(created), us(ended))
	}
	if again, err := st.Load(ctx, tok); err != nil {
		return fmt.Errorf("load after destroy: %w", err)
	} else if !again.IsNew() {
		return errors.New("a destroyed session still loads: Load must require expiry > now")
	}
	l.Set("after", 1)
	if err := st.Save(ctx, l); err != nil {
		return fmt.Errorf("save after destroy: %w", err)
	}
	if l.Token() == tok {
		return errors.New("a session saved after Destroy reused the destroyed token")
	}
	return nil
}

// destroyDeleteRows: with WithDeleteRows, Destroy removes the row.
func destroyDeleteRows(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	st, err := e.open(ctx, e.db, t, session.WithDeleteRows(true))
	if err != nil {
		return err
	}
	sess, err := st.saveNew(ctx, map[string]any{"user": "alice"})
	if err != nil {
		return err
	}
	tok := sess.Token()
	if err := st.Destroy(ctx, sess); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	if r, err := e.rowOf(ctx, t, tok); err != nil {
		return err
	} else if r.exists {
		return errors.New("with WithDeleteRows(true), Destroy left the row in the table")
	}
	if again, err := st.Load(ctx, tok); err != nil || !again.IsNew() {
		return fmt.Errorf("load after destroy: new=%v err=%v", again.IsNew(), err)
	}
	return nil
}

// touchForwardOnly: Touch and Save move expiry forward and never back,
// even from a store whose clock is behind or whose copy is stale.
func touchForwardOnly(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	opts := []session.Option{session.WithIdleTimeout(time.Hour), session.WithAbsoluteTimeout(0), session.WithTouchInterval(0)}
	clkA, clkB := newClock(baseTime), newClock(baseTime)
	a, err := e.open(ctx, e.db, t, append(opts, session.WithClock(clkA.Now))...)
	if err != nil {
		return err
	}
	b, err := e.open(ctx, e.db, t, append(opts, session.WithClock(clkB.Now))...)
	if err != nil {
		return err
	}
	sess, err := a.saveNew(ctx, map[string]any{"k": "v"})
	if err != nil {
		return err
	}
	tok := sess.Token()
	base := baseTime.Truncate(time.Microsecond)

	clkB.Set(baseTime.Add(10 * time.Minute))
	stale, err := b.Load(ctx, tok) // holds expiry base+1h
	if err != nil || stale.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", stale.IsNew(), err)
	}
	clkA.Set(baseTime.Add(30 * time.Minute))
	fresh, err := a.Load(ctx, tok)
	if err != nil || fresh.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", fresh.IsNew(), err)
	}
	if err := a.Touch(ctx, fresh); err != nil {
		return fmt.Errorf("touch: %w", err)
	}
	far := base.Add(90 * time.Minute)
	if r, err := e.rowOf(ctx, t, tok); err != nil {
		return err
	} else if !r.expiry.Equal(far) {
		return fmt.Errorf("Touch set expiry to %s, want %s", us(r.expiry), us(far))
	}

	// B's clock is behind and its copy stale: its touch would set base+80m.
	clkB.Set(baseTime.Add(20 * time.Minute))
	if err := b.Touch(ctx, stale); err != nil {
		return fmt.Errorf("touch from a store whose clock is behind: %w", err)
	}
	if r, err := e.rowOf(ctx, t, tok); err != nil {
		return err
	} else if !r.expiry.Equal(far) {
		return fmt.Errorf("a touch from a clock behind moved expiry back from %s to %s: expiry must only move forward", us(far), us(r.expiry))
	}
	stale.Set("b", 1)
	if err := b.Save(ctx, stale); err != nil {
		return fmt.Errorf("save from a store whose clock is behind: %w", err)
	}
	r, err := e.rowOf(ctx, t, tok)
	if err != nil {
		return err
	}
	if !r.expiry.Equal(far) {
		return fmt.Errorf("a save from a clock behind moved expiry back from %s to %s: expiry must only move forward", us(far), us(r.expiry))
	}
	return nil
}
