package codec

import (
	"encoding/gob"
	"math"
	"reflect"
	"time"
)

// Types that go through the gob fallback in tests.
type (
	testPoint struct {
		X, Y  int
		Label string
	}
	testRecord struct {
		ID   int64
		Tags []string
		When time.Time
	}
	testRole string
)

func init() {
	gob.Register(testPoint{})
	gob.Register(&testRecord{})
	gob.Register(testRole(""))
	// For the plain encoding/gob comparison benchmarks.
	gob.Register(time.Time{})
}

// sameValues reports whether two decoded sessions hold the same values of
// the same types. Unlike reflect.DeepEqual, it treats floats as equal when
// their bits are (so NaN equals NaN), and times as equal when they are the
// same instant in the same zone, whatever their *time.Location pointer.
func sameValues(a, b map[string]any) bool {
	return sameValue(reflect.ValueOf(a), reflect.ValueOf(b))
}

var timeType = reflect.TypeFor[time.Time]()

func sameValue(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	if a.Type() == timeType {
		return sameTime(a.Interface().(time.Time), b.Interface().(time.Time))
	}
	switch a.Kind() {
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Complex64, reflect.Complex128:
		ca, cb := a.Complex(), b.Complex()
		return math.Float64bits(real(ca)) == math.Float64bits(real(cb)) &&
			math.Float64bits(imag(ca)) == math.Float64bits(imag(cb))
	case reflect.String:
		return a.String() == b.String()
	case reflect.Interface, reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.IsNil() != b.IsNil() {
			return false
		}
		fallthrough
	case reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for it := a.MapRange(); it.Next(); {
			bv := b.MapIndex(it.Key())
			if !bv.IsValid() || !sameValue(it.Value(), bv) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	}
	// Channels, funcs and unsafe pointers: never decoded.
	return false
}

func sameTime(a, b time.Time) bool {
	an, ao := a.Zone()
	bn, bo := b.Zone()
	return a.Equal(b) && an == bn && ao == bo &&
		(a.Location() == time.UTC) == (b.Location() == time.UTC) &&
		(a.Location() == time.Local) == (b.Location() == time.Local)
}

// tenKeySession is a typical session: a user id, a name, roles, a login
// time, a flag, a score and a few short strings.
func tenKeySession() map[string]any {
	return map[string]any{
		"user_id":  int64(4_815_162_342),
		"name":     "Ada Lovelace",
		"roles":    []string{"admin", "editor", "viewer"},
		"login_at": time.Date(2025, 3, 14, 15, 9, 26, 535_897_932, time.UTC),
		"remember": true,
		"score":    98.6,
		"csrf":     "f3a9c2d4e5b67890a1b2c3d4e5f60718",
		"locale":   "en-GB",
		"theme":    "dark",
		"flash":    "Your changes were saved.",
	}
}
