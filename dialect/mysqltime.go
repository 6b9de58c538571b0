package dialect

import (
	"fmt"
	"time"
)

// mysqlTimeLayout is the DATETIME(6) literal the MySQL dialect binds.
const mysqlTimeLayout = "2006-01-02 15:04:05.000000"

// formatMySQLTime returns t.UTC().Format(mysqlTimeLayout), writing the
// digits directly for the years 0 to 9999 that DATETIME holds.
func formatMySQLTime(t time.Time) string {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.Format(mysqlTimeLayout)
	}
	h, mi, s := t.Clock()
	var b [len(mysqlTimeLayout)]byte
	putDigits(b[0:4], y)
	b[4] = '-'
	putDigits(b[5:7], int(mo))
	b[7] = '-'
	putDigits(b[8:10], d)
	b[10] = ' '
	putDigits(b[11:13], h)
	b[13] = ':'
	putDigits(b[14:16], mi)
	b[16] = ':'
	putDigits(b[17:19], s)
	b[19] = '.'
	putDigits(b[20:26], t.Nanosecond()/1000)
	return string(b[:])
}

// putDigits writes v into b as len(b) decimal digits.
func putDigits(b []byte, v int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

// parseMySQLTime reads a DATETIME literal as a UTC instant, as parseUTC
// does: the form the server sends ("2006-01-02 15:04:05", with 1 to 9
// fractional digits or none) is read directly, anything else by parseUTC.
func parseMySQLTime(b []byte) (time.Time, error) {
	if t, ok := parseDatetime(b); ok {
		return t, nil
	}
	return parseUTC(string(b))
}

// parseDatetime reads "YYYY-MM-DD HH:MM:SS[.fffffffff]" with every field
// in range; ok is false for anything else, which time.Parse then judges.
func parseDatetime(b []byte) (t time.Time, ok bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || b[10] != ' ' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	y, ok1 := digits(b[0:4])
	mo, ok2 := digits(b[5:7])
	d, ok3 := digits(b[8:10])
	h, ok4 := digits(b[11:13])
	mi, ok5 := digits(b[14:16])
	s, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59 {
		return time.Time{}, false
	}
	ns := 0
	if len(b) > 19 {
		frac := b[20:]
		if b[19] != '.' || len(frac) == 0 || len(frac) > 9 {
			return time.Time{}, false
		}
		f, ok := digits(frac)
		if !ok {
			return time.Time{}, false
		}
		ns = f
		for range 9 - len(frac) {
			ns *= 10
		}
	}
	t = time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC)
	if t.Day() != d {
		return time.Time{}, false // past the month's end: time.Parse says so
	}
	return t, true
}

// digits reads b as an unsigned decimal number.
func digits(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// parseUTC reads a DATETIME literal as a UTC instant.
func parseUTC(s string) (time.Time, error) {
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", s, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("dialect: time %q: %w", s, err)
	}
	return t, nil
}
