package session

import (
	"testing"
	"time"

	"github.com/visitsession/visitsession/internal/codec"
	"github.com/visitsession/visitsession/visit"
)

var stepSink *Session

// BenchmarkLoadSteps measures, without a database, each step a load of a
// ten-key session takes besides its statement: the token's check and hash,
// the clock, the Session, the check of the stored data (bind), and the
// decoding of the one value a request reads.
func BenchmarkLoadSteps(b *testing.B) {
	st := &Store{cfg: defaultConfig()}
	st.indexed, _ = st.cfg.codec.(codec.Indexed)
	data, err := st.cfg.codec.Encode(map[string]any{
		"user_id": int64(1234567), "name": "Ada Lovelace", "roles": []string{"admin", "editor", "viewer"},
		"login_at": time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), "mfa": true, "score": 98.6,
		"lang": "en-GB", "theme": "dark", "csrf": "k2Jd9sL0qPzX8vB3nM5tY7wQ1eR4uI6o", "cart_items": 3,
	})
	if err != nil {
		b.Fatal(err)
	}
	tok := visit.NewToken()
	b.Run("token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			t, err := visit.ParseToken(tok)
			if err != nil || st.cfg.keyMode.StoredKey(t) == "" {
				b.Fatal(err)
			}
		}
	})
	b.Run("clock", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = st.now()
		}
	})
	b.Run("session", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			stepSink = &Session{store: st}
		}
	})
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		s := &Session{store: st}
		for b.Loop() {
			if err := st.bind(s, tok, tok, row{data: data}); err != nil || s.raw == nil {
				b.Fatal("data not checked", err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		s := &Session{store: st}
		if err := st.bind(s, tok, tok, row{data: data}); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			s.rawReads = 0 // every read decodes its value, as a request's first does
			if s.GetInt64("user_id") != 1234567 {
				b.Fatal("wrong value")
			}
		}
	})
}
