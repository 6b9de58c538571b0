package dialect

import (
	"database/sql/driver"

	"modernc.org/sqlite"
)

// FreshBytes reports whether drv hands over every []byte it returns from
// a row as a slice of its own, allocated for that value and never reused
// by a later row or call, so that a scan may keep it without copying it.
// It is true for modernc.org/sqlite, which copies each BLOB out of the
// database into a new slice, and false for every driver not known to do
// so: go-sql-driver/mysql, for one, returns slices of its read buffer.
func FreshBytes(drv driver.Driver) bool {
	_, ok := drv.(*sqlite.Driver)
	return ok
}
