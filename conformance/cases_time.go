package conformance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// checkBoundary checks that the session of tok loads, with expiry exactly
// want, one microsecond before want, and does not load at want. clk is the
// clock of st.
func checkBoundary(ctx context.Context, st *store, clk *clock, tok string, want time.Time, zone *time.Location) error {
	clk.Set(want.Add(-time.Microsecond).In(zone))
	l, err := st.Load(ctx, tok)
	if err != nil {
		return fmt.Errorf("load 1µs before expiry: %w", err)
	}
	if l.IsNew() {
		return fmt.Errorf("the session did not load 1µs before its expiry %s: the database must keep microsecond precision and Load must compare expiry > now", us(want))
	}
	if !l.Expiry().Equal(want) {
		return fmt.Errorf("expiry read back as %s, want %s: microsecond precision lost or time shifted", us(l.Expiry()), us(want))
	}
	clk.Set(want.In(zone))
	l, err = st.Load(ctx, tok)
	if err != nil {
		return fmt.Errorf("load at expiry: %w", err)
	}
	if !l.IsNew() {
		return fmt.Errorf("the session loaded at its expiry instant %s: Load must require expiry > now, so that a session is dead at its expiry", us(want))
	}
	return nil
}

// expiryMicrosecondBoundary: instants are stored to the microsecond; a
// session is live 1µs before its expiry and dead at it.
func expiryMicrosecondBoundary(ctx context.Context, e *env) error {
	t, clk, st, err := e.clockedStore(ctx, session.WithIdleTimeout(time.Hour))
	if err != nil {
		return err
	}
	sess, err := st.saveNew(ctx, map[string]any{"k": "v"})
	if err != nil {
		return err
	}
	created := baseTime.Truncate(time.Microsecond)
	expiry := created.Add(time.Hour)
	r, err := e.rowOf(ctx, t, sess.Token())
	if err != nil {
		return err
	}
	if !r.created.Equal(created) {
		return fmt.Errorf("created stored as %s, want %s: the database or the dialect's time encoding lost microsecond precision", us(r.created), us(created))
	}
	if !r.expiry.Equal(expiry) {
		return fmt.Errorf("expiry stored as %s, want %s: the database or the dialect's time encoding lost microsecond precision", us(r.expiry), us(expiry))
	}
	return checkBoundary(ctx, st, clk, sess.Token(), expiry, time.UTC)
}

// expiryAbsoluteTimeout: however active, a session ends at its creation
// plus the absolute timeout.
func expiryAbsoluteTimeout(ctx context.Context, e *env) error {
	t, clk, st, err := e.clockedStore(ctx, session.WithIdleTimeout(time.Hour), session.WithAbsoluteTimeout(90*time.Minute), session.WithTouchInterval(0))
	if err != nil {
		return err
	}
	sess, err := st.saveNew(ctx, map[string]any{"n": 1})
	if err != nil {
		return err
	}
	limit := baseTime.Truncate(time.Microsecond).Add(90 * time.Minute)
	clk.Add(50 * time.Minute)
	l, err := st.Load(ctx, sess.Token())
	if err != nil || l.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", l.IsNew(), err)
	}
	l.Set("n", 2)
	if err := st.Save(ctx, l); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := st.Touch(ctx, l); err != nil {
		return fmt.Errorf("touch: %w", err)
	}
	r, err := e.rowOf(ctx, t, sess.Token())
	if err != nil {
		return err
	}
	if !r.expiry.Equal(limit) || !l.Expiry().Equal(limit) {
		return fmt.Errorf("after a save and a touch 50 minutes in, expiry is %s (session says %s), want the absolute limit %s",
			us(r.expiry), us(l.Expiry()), us(limit))
	}
	return checkBoundary(ctx, st, clk, sess.Token(), limit, time.UTC)
}

// expiryAfter2038: instants past the 32-bit Unix time limit, up to 2100,
// are stored and compared correctly.
func expiryAfter2038(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	for _, at := range []time.Time{
		time.Date(2038, 1, 19, 3, 14, 8, 1000, time.UTC), // one second past 2^31 seconds
		time.Date(2100, 6, 7, 8, 9, 10, 987654321, time.FixedZone("UTC+05:30", 5*3600+1800)),
	} {
		clk := newClock(at)
		st, err := e.open(ctx, e.db, t, session.WithClock(clk.Now), session.WithIdleTimeout(time.Hour))
		if err != nil {
			return err
		}
		sess, err := st.saveNew(ctx, map[string]any{"year": at.Year()})
		if err != nil {
			return fmt.Errorf("%d: %w", at.Year(), err)
		}
		want := at.UTC().Truncate(time.Microsecond)
		r, err := e.rowOf(ctx, t, sess.Token())
		if err != nil {
			return err
		}
		if !r.created.Equal(want) {
			return fmt.Errorf("created at %s stored as %s", us(want), us(r.created))
		}
		clk.Set(at.Add(time.Minute))
		l, err := st.Load(ctx, sess.Token())
		if err != nil || l.IsNew() {
			return fmt.Errorf("a session created at %s did not load a minute later: new=%v err=%v", us(want), l.IsNew(), err)
		}
		if !l.Created().Equal(want) || l.Created().Location() != time.UTC {
			return fmt.Errorf("created read back as %s, want %s in UTC", l.Created().Format(time.RFC3339Nano), us(want))
		}
		if err := checkBoundary(ctx, st, clk, sess.Token(), want.Add(time.Hour), at.Location()); err != nil {
			return fmt.Errorf("%d: %w", at.Year(), err)
		}
	}
	return nil
}

// Odd fixed zones, with offsets that are not whole hours.
var (
	zoneKathmandu  = time.FixedZone("UTC+05:45", 5*3600+45*60)
	zoneMarquesas  = time.FixedZone("UTC-09:30", -(9*3600 + 30*60))
	zoneEastFar    = time.FixedZone("UTC+14", 14*3600)
	zoneWestFar    = time.FixedZone("UTC-12", -12*3600)
	zonesForClocks = []*time.Location{zoneKathmandu, zoneMarquesas, zoneEastFar, zoneWestFar}
)

// timeFixedZoneClocks: the zone of the application's clock does not
// matter; only the instant is stored, and stores whose clocks are in
// different zones agree on it.
func timeFixedZoneClocks(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	opts := []session.Option{session.WithIdleTimeout(time.Hour)}
	for i, zw := range zonesForClocks {
		zr := zonesForClocks[(i+1)%len(zonesForClocks)]
		cw, cr := newClock(baseTime.In(zw)), newClock(baseTime.In(zr))
		w, err := e.open(ctx, e.db, t, append(opts, session.WithClock(cw.Now))...)
		if err != nil {
			return err
		}
		rd, err := e.open(ctx, e.db, t, append(opts, session.WithClock(cr.Now))...)
		if err != nil {
			return err
		}
		sess, err := w.saveNew(ctx, map[string]any{"zone": zw.String()})
		if err != nil {
			return err
		}
		want := baseTime.Truncate(time.Microsecond)
		r, err := e.rowOf(ctx, t, sess.Token())
		if err != nil {
			return err
		}
		if !r.created.Equal(want) {
			return fmt.Errorf("a clock in %s at %s stored created as %s: the instant must be stored with microsecond precision, whatever the clock's zone", zw, us(want), us(r.created))
		}
		l, err := rd.Load(ctx, sess.Token())
		if err != nil || l.IsNew() {
			return fmt.Errorf("a store with its clock in %s did not load a session written by one in %s: new=%v err=%v", zr, zw, l.IsNew(), err)
		}
		if !l.Created().Equal(want) || l.Created().Location() != time.UTC {
			return fmt.Errorf("created read back as %s in %s, want %s in UTC", l.Created().Format(time.RFC3339Nano), l.Created().Location(), us(want))
		}
		if err := checkBoundary(ctx, rd, cr, sess.Token(), want.Add(time.Hour), zr); err != nil {
			return fmt.Errorf("reading in %s what %s wrote: %w", zr, zw, err)
		}
	}
	return nil
}

// connectionZoneStatements are the ways known to set a connection's
// session time zone to UTC+05:45, tried in order; the first the database
// accepts is used.
var connectionZoneStatements = []string{
	"SET TIME ZONE 'Asia/Kathmandu'", // PostgreSQL, CockroachDB, YugabyteDB
	"SET time_zone = '+05:45'",       // MySQL, MariaDB, TiDB
}

// setConnectionZone runs the first statement of connectionZoneStatements
// that q accepts, and returns it; "" when none is accepted.
func setConnectionZone(ctx context.Context, q visit.Querier) string {
	for _, s := range connectionZoneStatements {
		if _, err := q.ExecContext(ctx, s); err == nil {
			return s
		}
	}
	return ""
}

// timeConnectionTimeZone: a connection whose session time zone is
// UTC+05:45 writes and compares the same instants as the others. The
// engine's own statements run on one pinned connection with the zone
// changed, and a store on the pool checks what they wrote, and the other
// way round; with WithOpener, a whole store also runs on a one-connection
// pool with the zone changed.
func timeConnectionTimeZone(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	conn, err := e.pinnedConn(ctx)
	if err != nil {
		return err
	}
	set := setConnectionZone(ctx, conn)
	if set == "" {
		return skipf("the database accepts none of %s: it has no connection time zone the suite knows how to set",
			strings.Join(connectionZoneStatements, "; "))
	}
	stmts, err := e.d.Statements(t)
	if err != nil {
		return err
	}
	clk := newClock(baseTime)
	st, err := e.open(ctx, e.db, t, session.WithClock(clk.Now), session.WithIdleTimeout(time.Hour))
	if err != nil {
		return err
	}

	// Written on the zoned connection, read by the store on the pool.
	tok := visit.NewToken()
	key := visit.HashToken(tok)
	e.trackKey(t, key)
	created := baseTime.Truncate(time.Microsecond)
	expiry := created.Add(time.Hour)
	data, err := session.GobCodec().Encode(map[string]any{"zone": "kathmandu"})
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, stmts.Insert, key, data, e.d.EncodeTime(created), e.d.EncodeTime(expiry)); err != nil {
		return fmt.Errorf("insert on a connection after %q: %w", set, err)
	}
	clk.Set(created)
	l, err := st.Load(ctx, tok)
	if err != nil || l.IsNew() {
		return fmt.Errorf("a session written on a connection after %q did not load elsewhere: new=%v err=%v", set, l.IsNew(), err)
	}
	if !l.Created().Equal(created) || l.GetString("zone") != "kathmandu" {
		return fmt.Errorf("a session written on a connection after %q reads back created %s, want %s: the connection's time zone shifted the instant",
			set, us(l.Created()), us(created))
	}
	if err := checkBoundary(ctx, st, clk, tok, expiry, time.UTC); err != nil {
		return fmt.Errorf("written on a connection after %q: %w", set, err)
	}

	// Written by the store, read and compared on the zoned connection.
	clk.Set(baseTime.Add(time.Minute))
	sess, err := st.saveNew(ctx, map[string]any{"zone": "utc"})
	if err != nil {
		return err
	}
	created2 := clk.Now().Truncate(time.Microsecond)
	expiry2 := created2.Add(time.Hour)
	load := func(now time.Time) (found bool, created, expiry time.Time, err error) {
		var d []byte
		var c, x any
		var v int64
		err = conn.QueryRowContext(ctx, stmts.Load, visit.HashToken(sess.Token()), e.d.EncodeTime(now)).Scan(&d, &c, &x, &v)
		if errors.Is(err, sql.ErrNoRows) {
			return false, created, expiry, nil
		}
		if err != nil {
			return false, created, expiry, err
		}
		if created, err = e.d.DecodeTime(c); err == nil {
			expiry, err = e.d.DecodeTime(x)
		}
		return true, created, expiry, err
	}
	found, gotCreated, gotExpiry, err := load(expiry2.Add(-time.Microsecond))
	switch {
	case err != nil:
		return fmt.Errorf("load on a connection after %q: %w", set, err)
	case !found:
		return fmt.Errorf("on a connection after %q, a session 1µs before its expiry %s did not load: the connection's time zone shifted the comparison", set, us(expiry2))
	case !gotCreated.Equal(created2) || !gotExpiry.Equal(expiry2):
		return fmt.Errorf("on a connection after %q, created and expiry read as %s and %s, want %s and %s",
			set, us(gotCreated), us(gotExpiry), us(created2), us(expiry2))
	}
	if found, _, _, err = load(expiry2); err != nil {
		return fmt.Errorf("load on a connection after %q: %w", set, err)
	} else if found {
		return fmt.Errorf("on a connection after %q, a session loaded at its expiry instant %s: the connection's time zone shifted the comparison", set, us(expiry2))
	}
	if e.cfg.opener != nil {
		return storeOnZonedPool(ctx, e, t, st, clk)
	}
	return nil
}

// storeOnZonedPool runs a whole store on a one-connection pool whose
// session time zone is changed, and checks its sessions from st on the
// caller's pool.
func storeOnZonedPool(ctx context.Context, e *env, t visit.Table, st *store, clk *clock) error {
	pool, err := e.secondPool(ctx)
	if err != nil {
		return err
	}
	pool.SetMaxOpenConns(1)
	pool.SetMaxIdleConns(1)
	pool.SetConnMaxLifetime(0)
	pool.SetConnMaxIdleTime(0)
	set := setConnectionZone(ctx, pool)
	if set == "" {
		return errors.New("the pool from WithOpener accepts no time zone statement that the caller's pool accepted")
	}
	zclk := newClock(baseTime.Add(2 * time.Minute).In(zoneMarquesas))
	zst, err := e.open(ctx, pool, t, session.WithClock(zclk.Now), session.WithIdleTimeout(time.Hour))
	if err != nil {
		return err
	}
	sess, err := zst.saveNew(ctx, map[string]any{"zone": "pool"})
	if err != nil {
		return fmt.Errorf("a store on a pool after %q: %w", set, err)
	}
	created := zclk.Now().UTC().Truncate(time.Microsecond)
	r, err := e.rowOf(ctx, t, sess.Token())
	if err != nil {
		return err
	}
	if !r.created.Equal(created) || !r.expiry.Equal(created.Add(time.Hour)) {
		return fmt.Errorf("a store on a pool after %q stored created %s and expiry %s, want %s and %s",
			set, us(r.created), us(r.expiry), us(created), us(created.Add(time.Hour)))
	}
	if err := checkBoundary(ctx, zst, zclk, sess.Token(), created.Add(time.Hour), zoneMarquesas); err != nil {
		return fmt.Errorf("a store on a pool after %q: %w", set, err)
	}
	if err := checkBoundary(ctx, st, clk, sess.Token(), created.Add(time.Hour), time.UTC); err != nil {
		return fmt.Errorf("read on the caller's pool what a store on a pool after %q wrote: %w", set, err)
	}
	return nil
}
