package sqlmocktest

import (
	"context"
	"errors"
	"testing"

	"github.com/visitsession/visitsession/session"
)

// TestLoadReadErrors: an error the driver reports while reading the load's
// row, or when closing its result, is the load's error; the session is
// empty and unbound, and the connection goes back to the pool (buildMock
// checks none is left in use).
func TestLoadReadErrors(t *testing.T) {
	errRead := errors.New("connection reset while reading the row")
	for _, c := range []struct {
		name string
		set  func(m *mocked, key string)
	}{
		{"row", func(m *mocked, key string) {
			m.expectLoad(key, epoch).WillReturnRows(m.rows(live(3, map[string]any{"k": "v"})).RowError(0, errRead))
		}},
		{"close", func(m *mocked, key string) {
			m.expectLoad(key, epoch).WillReturnRows(m.rows(live(3, map[string]any{"k": "v"})).CloseError(errRead))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachDialect(t, func(t *testing.T, m *mocked) {
				st := m.open()
				tok, key := newToken()
				c.set(m, key)
				s, err := st.Load(context.Background(), tok)
				if !errors.Is(err, errRead) || errors.Is(err, session.ErrCorrupt) {
					t.Fatalf("Load error = %v; want the read error", err)
				}
				if s.Len() != 0 || !s.IsNew() || s.Token() != "" {
					t.Fatalf("session after a failed read: len %d, new %v, token %q", s.Len(), s.IsNew(), s.Token())
				}
			})
		})
	}
}
