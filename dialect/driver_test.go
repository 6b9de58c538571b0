package dialect_test

import (
	"bytes"
	"context"
	"database/sql/driver"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestFreshBytesDrivers(t *testing.T) {
	for _, c := range []struct {
		drv  driver.Driver
		want bool
	}{
		{&sqlite.Driver{}, true},
		{&mysql.MySQLDriver{}, false},
		{&stdlib.Driver{}, false},
	} {
		if got := dialect.FreshBytes(c.drv); got != c.want {
			t.Errorf("FreshBytes(%T) = %v, want %v", c.drv, got, c.want)
		}
	}
}

// keeper is a Scanner that keeps the []byte it is given, as a load does
// when FreshBytes holds.
type keeper struct{ b []byte }

func (k *keeper) Scan(src any) error {
	b, ok := src.([]byte)
	if !ok {
		return fmt.Errorf("scanned %T, want []byte", src)
	}
	k.b = b
	return nil
}

// TestFreshBytesHolds reads rows of data from SQLite, whose driver
// FreshBytes vouches for, through a Scanner that keeps what the driver
// hands it: every kept slice must still hold its row's data after later
// rows were read and the rows closed. (go-sql-driver/mysql, which hands out
// slices of its read buffer, fails this.)
func TestFreshBytesHolds(t *testing.T) {
	tg := testdb.Get(t, "sqlite")
	if !dialect.FreshBytes(tg.DB.Driver()) {
		t.Fatalf("FreshBytes does not vouch for %T", tg.DB.Driver())
	}
	ctx := context.Background()
	tab := tg.CreateTable(t)
	st, err := tg.Dialect.Statements(tab)
	if err != nil {
		t.Fatal(err)
	}
	now := tg.Dialect.EncodeTime(time.Now().UTC().Truncate(time.Microsecond))
	const rows = 50
	want := make([][]byte, rows)
	for i := range want {
		want[i] = bytes.Repeat([]byte{byte(i)}, 100+i)
		if _, err := tg.DB.ExecContext(ctx, st.Insert, fmt.Sprintf("k%039d", i), want[i], now, now); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := tg.DB.QueryContext(ctx, "SELECT "+tg.Dialect.Quote(tab.Data)+" FROM "+tg.Dialect.Quote(tab.Name)+
		" ORDER BY "+tg.Dialect.Quote(tab.Key))
	if err != nil {
		t.Fatal(err)
	}
	var kept [][]byte
	for rs.Next() {
		var k keeper
		if err := rs.Scan(&k); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, k.b)
	}
	if err := rs.Close(); err != nil {
		t.Fatal(err)
	}
	if len(kept) != rows {
		t.Fatalf("read %d rows, want %d", len(kept), rows)
	}
	for i := range kept {
		if !bytes.Equal(kept[i], want[i]) {
			t.Fatalf("row %d: kept slice changed after later rows: % x…", i, kept[i][:8])
		}
	}
}
