package conformance

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// gobPoint is a type outside the default codec's fast paths, stored
// through encoding/gob.
type gobPoint struct {
	X, Y  int
	Label string
}

var registerGobPoint = sync.OnceFunc(func() {
	gob.RegisterName("github.com/visitsession/visitsession/conformance.gobPoint", gobPoint{})
})

// sameValue reports whether got is what a codec that keeps Go types must
// return for want: equal, of the same type, times at the same instant with
// the same zone name and offset, floats bit-equal up to NaN payloads.
func sameValue(got, want any) bool {
	switch w := want.(type) {
	case time.Time:
		g, ok := got.(time.Time)
		if !ok {
			return false
		}
		gn, go_ := g.Zone()
		wn, wo := w.Zone()
		return g.Equal(w) && gn == wn && go_ == wo
	case float64:
		g, ok := got.(float64)
		return ok && (math.IsNaN(g) && math.IsNaN(w) || g == w && math.Signbit(g) == math.Signbit(w))
	case float32:
		g, ok := got.(float32)
		return ok && (g != g && w != w || g == w && math.Signbit(float64(g)) == math.Signbit(float64(w)))
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) || (g == nil) != (w == nil) {
			return false
		}
		for i := range w {
			if !sameValue(g[i], w[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || (g == nil) != (w == nil) {
			return false
		}
		return sameValues(g, w) == nil
	}
	return reflect.DeepEqual(got, want)
}

// sameValues compares two sessions' values with sameValue and names the
// first key that differs.
func sameValues(got, want map[string]any) error {
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		if gok != wok || !sameValue(g, w) {
			return fmt.Errorf("key %q: got %#v (%T, present %v), want %#v (%T, present %v)", k, g, g, gok, w, w, wok)
		}
	}
	return nil
}

// codecGobRoundTrip: every type the default codec supports comes back
// from the database with its Go type and value.
func codecGobRoundTrip(ctx context.Context, e *env) error {
	registerGobPoint()
	st, err := e.caseStore(ctx, session.WithCodec(session.GobCodec()))
	if err != nil {
		return err
	}
	values := gobCodecValues()
	sess, err := st.saveNew(ctx, values)
	if err != nil {
		return err
	}
	l, err := st.Load(ctx, sess.Token())
	if err != nil || l.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", l.IsNew(), err)
	}
	if err := sameValues(l.Values(), values); err != nil {
		return fmt.Errorf("the default codec did not round-trip through the database: %w", err)
	}
	return nil
}

// gobCodecValues is a value of every type the default codec supports.
func gobCodecValues() map[string]any {
	return map[string]any{
		"nil":         nil,
		"string":      "Zoë ✓ \x00 'quoted' \"double\"",
		"empty":       "",
		"bytes":       []byte{0, 1, 2, 0xB1, 0xff},
		"nil bytes":   []byte(nil),
		"empty bytes": []byte{},
		"true":        true,
		"false":       false,
		"int":         int(-42),
		"int8":        int8(math.MinInt8),
		"int16":       int16(math.MinInt16),
		"int32":       int32(math.MinInt32),
		"int64":       int64(math.MinInt64),
		"uint":        uint(42),
		"uint8":       uint8(math.MaxUint8),
		"uint16":      uint16(math.MaxUint16),
		"uint32":      uint32(math.MaxUint32),
		"uint64":      uint64(math.MaxUint64),
		"float32":     float32(-1.25),
		"float64":     math.Pi,
		"-0":          math.Copysign(0, -1),
		"+inf":        math.Inf(1),
		"nan":         math.NaN(),
		"utc time":    time.Date(2100, 1, 2, 3, 4, 5, 6, time.UTC),
		"zoned time":  time.Date(1969, 7, 20, 20, 17, 40, 123456789, zoneKathmandu),
		"duration":    -90*time.Minute - time.Nanosecond,
		"strings":     []string{"a", "", "Zoë"},
		"nil strings": []string(nil),
		"ints":        []int{1, -2, math.MaxInt},
		"anys":        []any{"x", int64(1), []any{true, nil}, map[string]any{"k": 1.5}},
		"string map":  map[string]string{"a": "b", "": "empty key"},
		"any map":     map[string]any{"nested": map[string]any{"deeper": []string{"z"}}, "n": uint16(7)},
		"gob":         gobPoint{X: 1, Y: -2, Label: "registered with encoding/gob"},
	}
}

// codecReadsOneByOne: values read one at a time from a loaded session, as
// the default codec decodes them on demand, equal the values saved, before
// and after the session is listed or changed, with and without a value
// that only encoding/gob decodes.
func codecReadsOneByOne(ctx context.Context, e *env) error {
	registerGobPoint()
	st, err := e.caseStore(ctx)
	if err != nil {
		return err
	}
	withGob := gobCodecValues()
	withoutGob := gobCodecValues()
	delete(withoutGob, "gob")
	for _, values := range []map[string]any{withoutGob, withGob} {
		sess, err := st.saveNew(ctx, values)
		if err != nil {
			return err
		}
		l, err := st.Load(ctx, sess.Token())
		if err != nil {
			return fmt.Errorf("load: %w", err)
		}
		if l.Len() != len(values) || l.Has("absent") {
			return fmt.Errorf("Len = %d, want %d; Has(absent) = %v", l.Len(), len(values), l.Has("absent"))
		}
		for round := range 2 { // the second round reads past the reads done one by one
			for k, want := range values {
				got, ok := l.Lookup(k)
				if !ok {
					return fmt.Errorf("round %d: Lookup(%q) found nothing", round, k)
				}
				if err := sameValues(map[string]any{k: got}, map[string]any{k: want}); err != nil {
					return fmt.Errorf("round %d: %w", round, err)
				}
			}
		}
		l.Set("added", "after reads")
		l.Delete("string")
		if err := st.Save(ctx, l); err != nil {
			return fmt.Errorf("save after reads: %w", err)
		}
		after, err := st.Load(ctx, sess.Token())
		if err != nil {
			return fmt.Errorf("load after save: %w", err)
		}
		want := maps.Clone(values)
		want["added"] = "after reads"
		delete(want, "string")
		if err := sameValues(after.Values(), want); err != nil {
			return fmt.Errorf("after a change following reads: %w", err)
		}
	}
	return nil
}

// codecJSONRoundTrip: the JSON codec stores one JSON object and gives back
// values as its documentation says; the typed getters convert them.
func codecJSONRoundTrip(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	st, err := e.open(ctx, e.db, t, session.WithCodec(session.JSONCodec()))
	if err != nil {
		return err
	}
	when := time.Date(2100, 1, 2, 3, 4, 5, 123456789, zoneKathmandu)
	big := int64(1<<60 + 1) // not exact as a float64
	values := map[string]any{
		"string":   "Zoë ✓ 'quoted' \"double\" <tag>",
		"true":     true,
		"nil":      nil,
		"big":      big,
		"float":    1.5,
		"bytes":    []byte{0, 1, 2, 0xff},
		"time":     when,
		"duration": 90 * time.Minute,
		"strings":  []string{"a", "b"},
		"anys":     []any{"x", true, nil},
		"map":      map[string]any{"k": "v", "nested": map[string]any{"b": false}},
	}
	sess, err := st.saveNew(ctx, values)
	if err != nil {
		return err
	}
	r, err := e.rowOf(ctx, t, sess.Token())
	if err != nil {
		return err
	}
	if !json.Valid(r.data) || !bytes.HasPrefix(bytes.TrimSpace(r.data), []byte("{")) {
		return errors.New("the JSON codec stored data that is not a JSON object")
	}
	l, err := st.Load(ctx, sess.Token())
	if err != nil || l.IsNew() {
		return fmt.Errorf("load: new=%v err=%v", l.IsNew(), err)
	}
	for _, k := range []string{"string", "true", "anys", "map"} {
		if !reflect.DeepEqual(l.Get(k), values[k]) {
			return fmt.Errorf("JSON key %q came back as %#v, want %#v unchanged", k, l.Get(k), values[k])
		}
	}
	if v, ok := l.Lookup("nil"); !ok || v != nil {
		return fmt.Errorf("JSON key \"nil\" came back as %#v (present %v), want a nil value", v, ok)
	}
	n, ok := l.Get("big").(json.Number)
	switch {
	case !ok || n.String() != "1152921504606846977":
		return fmt.Errorf("JSON number %d came back as %#v, want json.Number with its exact digits", big, l.Get("big"))
	case l.GetInt64("big") != big:
		return fmt.Errorf("GetInt64 of a JSON number gave %d, want %d", l.GetInt64("big"), big)
	case l.GetFloat64("float") != 1.5:
		return fmt.Errorf("GetFloat64 of a JSON number gave %v, want 1.5", l.GetFloat64("float"))
	case l.Get("bytes") != base64.StdEncoding.EncodeToString(values["bytes"].([]byte)):
		return fmt.Errorf("JSON []byte came back as %#v, want its base64 string", l.Get("bytes"))
	case !l.GetTime("time").Equal(when):
		return fmt.Errorf("GetTime of a JSON time gave %s, want %s", l.GetTime("time").Format(time.RFC3339Nano), when.Format(time.RFC3339Nano))
	case l.GetDuration("duration") != 90*time.Minute:
		return fmt.Errorf("GetDuration of a JSON duration gave %v, want 1h30m", l.GetDuration("duration"))
	case !slices.Equal(l.GetStrings("strings"), []string{"a", "b"}):
		return fmt.Errorf("GetStrings of a JSON array gave %q, want [a b]", l.GetStrings("strings"))
	}
	return nil
}

// unregistered is a type not registered with encoding/gob.
type unregistered struct{ A int }

// codecUnsupported: a value the codec cannot encode fails Save with
// ErrUnsupported, and nothing is written.
func codecUnsupported(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		name  string
		codec session.Codec
		value any
	}{
		{"default codec, channel", session.GobCodec(), make(chan int)},
		{"default codec, unregistered type", session.GobCodec(), unregistered{A: 1}},
		{"JSON codec, complex number", session.JSONCodec(), complex(1, 2)},
		{"JSON codec, NaN", session.JSONCodec(), math.NaN()},
	} {
		st, err := e.open(ctx, e.db, t, session.WithCodec(c.codec))
		if err != nil {
			return err
		}
		fresh := st.New()
		fresh.Set("bad", c.value)
		if err := st.Save(ctx, fresh); !errors.Is(err, session.ErrUnsupported) {
			return fmt.Errorf("%s: save of a new session gave %v, want session.ErrUnsupported", c.name, err)
		}
		if fresh.Token() != "" || st.Stats().Inserts != 0 {
			return fmt.Errorf("%s: a session that failed to encode was written", c.name)
		}
		sess, err := st.saveNew(ctx, map[string]any{"good": "kept"})
		if err != nil {
			return err
		}
		before, err := e.rowOf(ctx, t, sess.Token())
		if err != nil {
			return err
		}
		sess.Set("bad", c.value)
		if err := st.Save(ctx, sess); !errors.Is(err, session.ErrUnsupported) {
			return fmt.Errorf("%s: save of an existing session gave %v, want session.ErrUnsupported", c.name, err)
		}
		after, err := e.rowOf(ctx, t, sess.Token())
		if err != nil {
			return err
		}
		if !bytes.Equal(after.data, before.data) || after.version != before.version {
			return fmt.Errorf("%s: a save that failed to encode changed the stored row", c.name)
		}
	}
	return nil
}

// dataSizeLimit: a session at or below WithMaxSize is saved; one byte
// above gives ErrTooLarge, writes nothing, and leaves stored data intact.
func dataSizeLimit(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	values := map[string]any{"blob": strings.Repeat("x", 3000)}
	encoded, err := session.GobCodec().Encode(values)
	if err != nil {
		return err
	}
	size := len(encoded)
	for _, c := range []struct {
		what  string
		limit int
		ok    bool
	}{
		{"below the limit", size + 1, true},
		{"at the limit", size, true},
		{"one byte above the limit", size - 1, false},
	} {
		st, err := e.open(ctx, e.db, t, session.WithMaxSize(c.limit))
		if err != nil {
			return err
		}
		sess := st.New()
		sess.Set("blob", values["blob"])
		err = st.Save(ctx, sess)
		if c.ok {
			if err != nil {
				return fmt.Errorf("a %d-byte session %s (%d): %w", size, c.what, c.limit, err)
			}
			r, err := e.rowOf(ctx, t, sess.Token())
			if err != nil {
				return err
			}
			if len(r.data) != size {
				return fmt.Errorf("a %d-byte session %s was stored as %d bytes", size, c.what, len(r.data))
			}
			continue
		}
		if !errors.Is(err, session.ErrTooLarge) {
			return fmt.Errorf("a %d-byte session %s (%d) gave %v, want session.ErrTooLarge", size, c.what, c.limit, err)
		}
		if sess.Token() != "" || st.Stats().Inserts != 0 {
			return fmt.Errorf("a new session %s was written", c.what)
		}

		// An existing session grown past the limit keeps its stored data,
		// through Save and through Renew.
		small, err := st.saveNew(ctx, map[string]any{"small": "kept"})
		if err != nil {
			return err
		}
		before, err := e.rowOf(ctx, t, small.Token())
		if err != nil {
			return err
		}
		small.Set("blob", values["blob"])
		if err := st.Save(ctx, small); !errors.Is(err, session.ErrTooLarge) {
			return fmt.Errorf("saving an existing session grown %s gave %v, want session.ErrTooLarge", c.what, err)
		}
		tok := small.Token()
		if err := st.Renew(ctx, small); !errors.Is(err, session.ErrTooLarge) {
			return fmt.Errorf("renewing an existing session grown %s gave %v, want session.ErrTooLarge", c.what, err)
		}
		after, err := e.rowOf(ctx, t, tok)
		if err != nil {
			return err
		}
		if !after.exists || !bytes.Equal(after.data, before.data) || after.version != before.version {
			return fmt.Errorf("ErrTooLarge from a session grown %s changed the stored row", c.what)
		}
		l, err := st.Load(ctx, tok)
		if err != nil || l.GetString("small") != "kept" || l.Has("blob") {
			return fmt.Errorf("after ErrTooLarge the session reads %v (err %v), want its stored data", l.Keys(), err)
		}
	}
	return nil
}

// dataCorrupt: stored data that does not decode gives ErrCorrupt with a
// usable empty session bound to the row, and a save repairs the row.
func dataCorrupt(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	valid, err := session.GobCodec().Encode(map[string]any{"k": "a value long enough to cut"})
	if err != nil {
		return err
	}
	for _, c := range []struct {
		what  string
		codec session.Codec
		data  []byte
	}{
		{"garbage", session.GobCodec(), []byte{0xde, 0xad, 0xbe, 0xef}},
		{"truncated data", session.GobCodec(), valid[:len(valid)-3]},
		{"JSON read by the default codec", session.GobCodec(), []byte(`{"k":"v"}`)},
		{"truncated JSON", session.JSONCodec(), []byte(`{"k":`)},
		{"a JSON array", session.JSONCodec(), []byte(`["k"]`)},
	} {
		st, err := e.open(ctx, e.db, t, session.WithCodec(c.codec))
		if err != nil {
			return err
		}
		sess, err := st.saveNew(ctx, map[string]any{"k": "v"})
		if err != nil {
			return err
		}
		tok := sess.Token()
		if _, err := e.exec(ctx, e.db, "UPDATE "+e.d.Quote(t.Name)+" SET "+e.d.Quote(t.Data)+" = ? WHERE "+e.d.Quote(t.Key)+" = ?",
			c.data, visit.HashToken(tok)); err != nil {
			return fmt.Errorf("set up: write %s: %w", c.what, err)
		}
		l, err := st.Load(ctx, tok)
		if !errors.Is(err, session.ErrCorrupt) {
			return fmt.Errorf("loading %s gave %v, want session.ErrCorrupt", c.what, err)
		}
		if l == nil || l.IsNew() || l.Len() != 0 {
			return fmt.Errorf("loading %s did not give an empty session bound to the row", c.what)
		}
		if st.Stats().DecodeErrors != 1 {
			return fmt.Errorf("loading %s counted %d decode errors, want 1", c.what, st.Stats().DecodeErrors)
		}
		l.Set("fresh", "repaired")
		if err := st.Save(ctx, l); err != nil {
			return fmt.Errorf("saving over %s: %w", c.what, err)
		}
		if l.Token() != tok {
			return fmt.Errorf("saving over %s moved the session to another token", c.what)
		}
		again, err := st.Load(ctx, tok)
		if err != nil || again.GetString("fresh") != "repaired" {
			return fmt.Errorf("after saving over %s the session reads %v (err %v), want the new value", c.what, again.Keys(), err)
		}
	}
	return nil
}

// keysHashed: by default the key column holds the first 40 hex digits of
// the token's SHA-256; no token appears anywhere in the table, and a
// stored key does not work as a token.
func keysHashed(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	st, err := e.open(ctx, e.db, t)
	if err != nil {
		return err
	}
	var toks []string
	for i := range 3 {
		sess, err := st.saveNew(ctx, map[string]any{"i": i})
		if err != nil {
			return err
		}
		toks = append(toks, sess.Token())
	}
	for _, tok := range toks {
		if r, err := e.row(ctx, t, tok); err != nil {
			return err
		} else if r.exists {
			return errors.New("in hashed mode a row is stored under the token itself")
		}
		if r, err := e.rowOf(ctx, t, tok); err != nil {
			return err
		} else if !r.exists {
			return errors.New("in hashed mode no row is stored under the first 40 hex digits of SHA-256(token)")
		}
		// A dumped key is not a credential.
		if l, err := st.Load(ctx, visit.HashToken(tok)); err != nil {
			return err
		} else if !l.IsNew() {
			return errors.New("a stored key, used as a token, loaded the session")
		}
	}
	// A dump of the table (only the suite's rows, on the caller's table).
	q := "SELECT " + e.d.Quote(t.Key) + ", " + e.d.Quote(t.Data) + " FROM " + e.d.Quote(t.Name)
	var args []any
	if e.cfg.realTable {
		q += " WHERE " + e.d.Quote(t.Key) + " IN (?, ?, ?)"
		for _, tok := range toks {
			args = append(args, visit.HashToken(tok))
		}
	}
	query, err := e.d.Placeholder().ReplacePlaceholders(q)
	if err != nil {
		return err
	}
	rows, err := e.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var key string
		var data []byte
		if err := rows.Scan(&key, &data); err != nil {
			return fmt.Errorf("dump: %w", err)
		}
		n++
		if len(key) != visit.KeyLength || strings.Trim(key, "0123456789abcdef") != "" {
			return errors.New("a stored key in hashed mode is not 40 lowercase hex digits")
		}
		for _, tok := range toks {
			if strings.Contains(key, tok) || bytes.Contains(data, []byte(tok)) {
				return errors.New("a dump of the table contains a session token")
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	if n != len(toks) {
		return fmt.Errorf("the dump holds %d of the suite's rows, want %d", n, len(toks))
	}
	return nil
}

// keysPlain: with visit.KeyPlain the key column holds the token itself.
func keysPlain(ctx context.Context, e *env) error {
	t, err := e.caseTable(ctx)
	if err != nil {
		return err
	}
	st, err := e.open(ctx, e.db, t, session.WithKeyMode(visit.KeyPlain))
	if err != nil {
		return err
	}
	sess, err := st.saveNew(ctx, map[string]any{"k": "v"})
	if err != nil {
		return err
	}
	tok := sess.Token()
	if r, err := e.row(ctx, t, tok); err != nil {
		return err
	} else if !r.exists || r.data == nil {
		return errors.New("in plain mode no row is stored under the token")
	}
	if r, err := e.rowOf(ctx, t, tok); err != nil {
		return err
	} else if r.exists {
		return errors.New("in plain mode a row is stored under the token's hash")
	}
	l, err := st.Load(ctx, tok)
	if err != nil || l.GetString("k") != "v" {
		return fmt.Errorf("in plain mode the session did not load: %v", err)
	}
	return nil
}
