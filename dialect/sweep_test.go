package dialect_test

import (
	"database/sql"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

var sweepDialects = []dialect.Dialect{dialect.Postgres(), dialect.MySQL(), dialect.SQLite()}

// argCount returns how many arguments statement s takes: the highest $n or
// ?n, or else the number of bare ? placeholders.
func argCount(s string) int {
	most := 0
	for _, m := range regexp.MustCompile(`[$?](\d+)`).FindAllStringSubmatch(s, -1) {
		n, _ := strconv.Atoi(m[1])
		most = max(most, n)
	}
	if most > 0 {
		return most
	}
	return strings.Count(s, "?")
}

func TestSweepStatements(t *testing.T) {
	tab := visit.Table{Name: "app.sessions", Key: "sid", Data: "blob", Created: "born", Expiry: "ends_at", Version: "rev"}
	for _, d := range sweepDialects {
		t.Run(d.Name(), func(t *testing.T) {
			st, err := d.Sweep(tab, 250)
			if err != nil {
				t.Fatal(err)
			}
			batch := map[string]string{"Clear": st.Clear, "Delete": st.Delete}
			if st.Returning && st.Summary {
				t.Error("both Returning and Summary set")
			}
			if st.Returning || st.Summary {
				if st.ClearBound != "" || st.DeleteBound != "" {
					t.Error("bound queries set on a Returning or Summary dialect")
				}
			} else {
				if st.ClearBound == "" || st.DeleteBound == "" {
					t.Fatal("bound queries missing on a dialect without Returning or Summary")
				}
				batch["ClearBound"], batch["DeleteBound"] = st.ClearBound, st.DeleteBound
			}
			for name, s := range batch {
				if n := argCount(s); n != 3 {
					t.Errorf("%s takes %d arguments, want 3 (from, to, exclude): %s", name, n, s)
				}
				for _, want := range []string{
					d.Quote("app.sessions"),
					d.Quote("ends_at") + " >= ",
					d.Quote("ends_at") + " <= ",
					d.Quote("sid") + " <> ",
					"ORDER BY " + d.Quote("ends_at"),
				} {
					if !strings.Contains(s, want) {
						t.Errorf("%s lacks %q: %s", name, want, s)
					}
				}
				if limit := "LIMIT 250"; !strings.HasSuffix(name, "Bound") && !strings.Contains(s, limit) {
					t.Errorf("%s lacks %q: %s", name, limit, s)
				}
				if strings.HasPrefix(name, "Clear") != strings.Contains(s, d.Quote("blob")+" IS NOT NULL") {
					t.Errorf("%s: data condition wrong: %s", name, s)
				}
			}
			for _, s := range []string{st.ClearBound, st.DeleteBound} {
				if s != "" && !strings.Contains(s, "LIMIT 1 OFFSET 249") {
					t.Errorf("bound query does not pick the 250th row: %s", s)
				}
			}
			if st.Returning {
				for name, s := range map[string]string{"Clear": st.Clear, "Delete": st.Delete} {
					if !regexp.MustCompile(`RETURNING (t\.)?` + regexp.QuoteMeta(d.Quote("ends_at")) + `$`).MatchString(s) {
						t.Errorf("%s does not return the expiry: %s", name, s)
					}
				}
			}
			for name, c := range map[string]struct {
				s    string
				args int
			}{
				"Acquire": {st.Lease.Acquire, 5},
				"Insert":  {st.Lease.Insert, 4},
				"Read":    {st.Lease.Read, 1},
				"Renew":   {st.Lease.Renew, 3},
			} {
				if n := argCount(c.s); n != c.args {
					t.Errorf("Lease.%s takes %d arguments, want %d: %s", name, n, c.args, c.s)
				}
				if !strings.Contains(c.s, d.Quote("app.sessions")) || name != "Insert" && !strings.Contains(c.s, d.Quote("sid")+" = ") {
					t.Errorf("Lease.%s does not address the lease row of the table: %s", name, c.s)
				}
			}
		})
	}
}

func TestSweepPerDialect(t *testing.T) {
	tab := visit.Default()
	pg, _ := dialect.Postgres().Sweep(tab, 10)
	if !pg.Summary || pg.Returning || pg.Isolation != sql.LevelDefault || !strings.Contains(pg.Delete, "FOR UPDATE SKIP LOCKED") ||
		!strings.Contains(pg.Delete, `t.ctid = batch.tid AND t.tableoid = batch.toid`) || pg.Setup == "" || pg.Reset == "" ||
		pg.ClearBound != "" || pg.DeleteBound != "" {
		t.Errorf("postgres: want SKIP LOCKED candidates joined by ctid and tableoid, a planner setup and reset, a summary row: %+v", pg)
	}
	my, _ := dialect.MySQL().Sweep(tab, 10)
	if my.Returning || my.Summary || my.Setup != "" || my.Isolation != sql.LevelReadCommitted {
		t.Errorf("mysql: want bound queries in READ COMMITTED: %+v", my)
	}
	lite, _ := dialect.SQLite().Sweep(tab, 10)
	if !lite.Returning || lite.Summary || lite.Setup != "" || lite.Isolation != sql.LevelDefault || !strings.Contains(lite.Delete, "rowid IN (SELECT rowid") {
		t.Errorf("sqlite: want a returning rowid subquery: %+v", lite)
	}
}

func TestSweepRejects(t *testing.T) {
	for _, d := range sweepDialects {
		if _, err := d.Sweep(visit.Default(), 0); err == nil {
			t.Errorf("%s: batch 0 accepted", d.Name())
		}
		if _, err := d.Sweep(visit.Default().WithName("visit`; --"), 10); !errors.Is(err, visit.ErrInvalidName) {
			t.Errorf("%s: bad table name: %v", d.Name(), err)
		}
	}
}
