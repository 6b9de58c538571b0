package conformance_test

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/visitsession/visitsession/conformance"
	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/visit"
)

// noExpiryCheck is a real dialect whose load statements forget the
// "expiry > now" condition, so that expired and ended sessions load.
type noExpiryCheck struct{ dialect.Dialect }

func (d noExpiryCheck) Statements(t visit.Table) (dialect.Statements, error) {
	st, err := d.Dialect.Statements(t)
	if err != nil {
		return st, err
	}
	// Keep the placeholder, so the arguments still match: "expiry > ?"
	// becomes "(expiry > ? OR 1 = 1)".
	live := regexp.MustCompile(regexp.QuoteMeta(d.Quote(t.Expiry)) + ` > (\?|\$\d+)`)
	for _, q := range []*string{&st.Load, &st.LoadLocked} {
		broken := live.ReplaceAllString(*q, "($0 OR 1 = 1)")
		if broken == *q {
			return st, errors.New("test dialect: no expiry condition found in " + *q)
		}
		*q = broken
	}
	return st, nil
}

// truncatingTime is a real dialect that stores instants only to unit.
type truncatingTime struct {
	dialect.Dialect
	unit time.Duration
}

func (d truncatingTime) EncodeTime(t time.Time) any { return d.Dialect.EncodeTime(t.Truncate(d.unit)) }

// untouched are cases whose behaviours the breakages of
// TestBrokenDialectsFail do not touch: they must still pass.
var untouched = []string{"Open/InvalidIdentifiers", "Keys/Plain", "Codec/JSONRoundTrip"}

func resultsByName(rep conformance.Report) map[string]conformance.Result {
	m := make(map[string]conformance.Result, len(rep.Results))
	for _, r := range rep.Results {
		m[r.Name] = r
	}
	return m
}

// TestBrokenDialectsFail checks that the suite catches dialects broken in
// two classic ways, in the cases that test that behaviour, with messages
// that name it.
func TestBrokenDialectsFail(t *testing.T) {
	testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
		for _, tc := range []struct {
			name    string
			d       dialect.Dialect
			failing []string // cases that must fail
			mention string   // in each of their messages
		}{
			{
				name:    "load without expiry condition",
				d:       noExpiryCheck{tg.Dialect},
				failing: []string{"Load/ExpiredToken", "Expiry/MicrosecondBoundary", "Expiry/AbsoluteTimeout", "Destroy/KeepsRow"},
				mention: "expiry > now",
			},
			{
				name:    "time truncated to milliseconds",
				d:       truncatingTime{tg.Dialect, time.Millisecond},
				failing: []string{"Expiry/MicrosecondBoundary", "Save/RoundTrip", "Time/FixedZoneClocks"},
				mention: "microsecond precision",
			},
			{
				name:    "time truncated to seconds",
				d:       truncatingTime{tg.Dialect, time.Second},
				failing: []string{"Expiry/MicrosecondBoundary", "Save/RoundTrip", "Time/FixedZoneClocks"},
				mention: "microsecond precision",
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// Only the cases asserted on, to keep the test quick.
				names := append(slices.Clone(tc.failing), untouched...)
				run := "^(" + strings.Join(names, "|") + ")$"
				rep := conformance.Check(t.Context(), tg.DB, tc.d, conformance.WithRun(run))
				if len(rep.Results) != len(names) {
					t.Fatalf("WithRun(%q) ran %d cases, want %d", run, len(rep.Results), len(names))
				}
				err := rep.Err()
				if !errors.Is(err, conformance.ErrFailed) {
					t.Fatalf("Err() = %v, want an error wrapping ErrFailed", err)
				}
				byName := resultsByName(rep)
				for _, name := range tc.failing {
					r, ok := byName[name]
					if !ok {
						t.Fatalf("no result for case %s", name)
					}
					if r.Outcome != conformance.Fail {
						t.Errorf("%s: outcome %v, want FAIL", name, r.Outcome)
						continue
					}
					if !strings.Contains(r.Message, tc.mention) {
						t.Errorf("%s: message %q does not mention %q", name, r.Message, tc.mention)
					}
					var ce *conformance.CaseError
					found := false
					for e := range joined(err) {
						if errors.As(e, &ce) && ce.Name == name {
							found = true
						}
					}
					if !found {
						t.Errorf("%s: Err() does not hold its *CaseError", name)
					}
				}
				for _, name := range untouched {
					if r := byName[name]; r.Outcome != conformance.Pass {
						t.Errorf("%s: outcome %v (%s), want PASS", name, r.Outcome, r.Message)
					}
				}
			})
		}
	})
}

// joined yields the errors joined inside err, at any depth.
func joined(err error) func(func(error) bool) {
	return func(yield func(error) bool) {
		var walk func(error) bool
		walk = func(e error) bool {
			if e == nil {
				return true
			}
			if !yield(e) {
				return false
			}
			switch u := e.(type) {
			case interface{ Unwrap() []error }:
				for _, x := range u.Unwrap() {
					if !walk(x) {
						return false
					}
				}
			case interface{ Unwrap() error }:
				return walk(u.Unwrap())
			}
			return true
		}
		walk(err)
	}
}
