package sqlmocktest

import (
	"database/sql"
	"reflect"
	"strings"
	"testing"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

// query is a catalog query and its arguments.
type query struct {
	SQL  string
	Args []any
}

// pinned is every piece of SQL a dialect emits for the default visit table
// (and, where the schema matters, for "app.visit"), written out in full so
// that a change to any statement shows in review as a change to this file.
type pinned struct {
	Statements                dialect.Statements
	Sweep500                  dialect.SweepStatements // batch size 500
	CreateTable               []string
	AddColumn                 map[visit.Column]string
	CreateExpiryIndex         string
	NormalizeTimes            []string
	ColumnsQuery              query
	ExpiryIndexQuery          query
	QualifiedCreateTable      []string
	QualifiedColumnsQuery     query
	QualifiedExpiryIndexQuery query
	Lock                      dialect.Lock
	DDLTransaction            [3]string // begin, commit, rollback
	Prepare                   bool
	TransactionalDDL          bool
}

var golden = map[string]pinned{
	"postgres": {
		Statements: dialect.Statements{
			Load:       `SELECT "session_data", "created", "expiry", "version" FROM "visit" WHERE "visit_key" = $1 AND "expiry" > $2`,
			LoadLocked: `SELECT "session_data", "created", "expiry", "version" FROM "visit" WHERE "visit_key" = $1 AND "expiry" > $2 FOR UPDATE`,
			Insert:     `INSERT INTO "visit" ("visit_key","session_data","created","expiry","version") VALUES ($1,$2,$3,$4,1)`,
			Update:     `UPDATE "visit" SET "session_data" = $1, "expiry" = CASE WHEN "expiry" < $2 THEN $3 ELSE "expiry" END, "version" = "version" + 1 WHERE "visit_key" = $4 AND "version" = $5 AND "expiry" > $6`,
			UpdateAny:  `UPDATE "visit" SET "session_data" = $1, "expiry" = CASE WHEN "expiry" < $2 THEN $3 ELSE "expiry" END, "version" = "version" + 1 WHERE "visit_key" = $4 AND "expiry" > $5 AND "version" >= 0`,
			Renew:      `UPDATE "visit" SET "visit_key" = $1, "session_data" = $2, "expiry" = CASE WHEN "expiry" < $3 THEN $4 ELSE "expiry" END, "version" = "version" + 1 WHERE "visit_key" = $5 AND "version" = $6 AND "expiry" > $7`,
			Touch:      `UPDATE "visit" SET "expiry" = $1 WHERE "visit_key" = $2 AND "expiry" < $3 AND "expiry" > $4 AND "version" >= 0`,
			End:        `UPDATE "visit" SET "session_data" = NULL, "expiry" = $1, "version" = "version" + 1 WHERE "visit_key" = $2 AND "expiry" > $3 AND "version" >= 0`,
			Delete:     `DELETE FROM "visit" WHERE "visit_key" = $1 AND "version" >= 0`,
			Forward:    `INSERT INTO "visit" ("visit_key","session_data","created","expiry","version") VALUES ($1,$2,$3,$4,-1)`,
		},
		Sweep500: dialect.SweepStatements{
			Clear:   `WITH batch AS MATERIALIZED (SELECT tableoid AS toid, ctid AS tid FROM "visit" WHERE "expiry" >= $1 AND "expiry" <= $2 AND "session_data" IS NOT NULL AND "visit_key" <> $3 ORDER BY "expiry" LIMIT 500 FOR UPDATE SKIP LOCKED), changed AS (UPDATE "visit" AS t SET "session_data" = NULL FROM batch WHERE t.ctid = batch.tid AND t.tableoid = batch.toid AND t."expiry" <= $2 AND t."visit_key" <> $3 AND t."session_data" IS NOT NULL RETURNING t."expiry") SELECT count(*), max("expiry") FROM changed`,
			Delete:  `WITH batch AS MATERIALIZED (SELECT tableoid AS toid, ctid AS tid FROM "visit" WHERE "expiry" >= $1 AND "expiry" <= $2 AND "visit_key" <> $3 ORDER BY "expiry" LIMIT 500 FOR UPDATE SKIP LOCKED), changed AS (DELETE FROM "visit" AS t USING batch WHERE t.ctid = batch.tid AND t.tableoid = batch.toid AND t."expiry" <= $2 AND t."visit_key" <> $3 RETURNING t."expiry") SELECT count(*), max("expiry") FROM changed`,
			Summary: true,
			Setup:   `SELECT set_config('enable_seqscan', 'off', false), set_config('enable_bitmapscan', 'off', false), set_config('enable_sort', 'off', false), set_config('enable_hashjoin', 'off', false), set_config('enable_mergejoin', 'off', false)`,
			Reset:   `SELECT set_config(name, reset_val, false) FROM pg_settings WHERE name IN ('enable_seqscan', 'enable_bitmapscan', 'enable_sort', 'enable_hashjoin', 'enable_mergejoin')`,
			Lease: dialect.LeaseStatements{
				Acquire: `UPDATE "visit" SET "session_data" = $1, "expiry" = $2, "version" = "version" + 1 WHERE "visit_key" = $3 AND ("expiry" <= $4 OR "session_data" = $5)`,
				Insert:  `INSERT INTO "visit" ("visit_key","session_data","created","expiry","version") VALUES ($1,$2,$3,$4,1)`,
				Read:    `SELECT "session_data", "expiry" FROM "visit" WHERE "visit_key" = $1`,
				Renew:   `UPDATE "visit" SET "expiry" = $1, "version" = "version" + 1 WHERE "visit_key" = $2 AND "session_data" = $3`,
			},
		},
		CreateTable: []string{
			`CREATE TABLE IF NOT EXISTS "visit" ("visit_key" VARCHAR(40) NOT NULL, "session_data" BYTEA NULL, "created" TIMESTAMPTZ NOT NULL, "expiry" TIMESTAMPTZ NOT NULL, "version" BIGINT NOT NULL DEFAULT 0, PRIMARY KEY ("visit_key"))`,
			`CREATE INDEX IF NOT EXISTS "visit_expiry_idx" ON "visit" ("expiry")`,
		},
		AddColumn: map[visit.Column]string{
			visit.ColData:    `ALTER TABLE "visit" ADD COLUMN "session_data" BYTEA NULL`,
			visit.ColCreated: `ALTER TABLE "visit" ADD COLUMN "created" TIMESTAMPTZ NOT NULL DEFAULT 'epoch'`,
			visit.ColExpiry:  `ALTER TABLE "visit" ADD COLUMN "expiry" TIMESTAMPTZ NOT NULL DEFAULT 'epoch'`,
			visit.ColVersion: `ALTER TABLE "visit" ADD COLUMN "version" BIGINT NOT NULL DEFAULT 0`,
		},
		CreateExpiryIndex: `CREATE INDEX IF NOT EXISTS "visit_expiry_idx" ON "visit" ("expiry")`,
		NormalizeTimes:    nil,
		ColumnsQuery:      query{`SELECT column_name FROM information_schema.columns WHERE table_schema = COALESCE($1::text, current_schema()) AND table_name = $2`, []any{nil, "visit"}},
		ExpiryIndexQuery:  query{`SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] WHERE n.nspname = COALESCE($1::text, current_schema()) AND c.relname = $2 AND a.attname = $3`, []any{nil, "visit", "expiry"}},
		QualifiedCreateTable: []string{
			`CREATE TABLE IF NOT EXISTS "app"."visit" ("visit_key" VARCHAR(40) NOT NULL, "session_data" BYTEA NULL, "created" TIMESTAMPTZ NOT NULL, "expiry" TIMESTAMPTZ NOT NULL, "version" BIGINT NOT NULL DEFAULT 0, PRIMARY KEY ("visit_key"))`,
			`CREATE INDEX IF NOT EXISTS "visit_expiry_idx" ON "app"."visit" ("expiry")`,
		},
		QualifiedColumnsQuery:     query{`SELECT column_name FROM information_schema.columns WHERE table_schema = COALESCE($1::text, current_schema()) AND table_name = $2`, []any{"app", "visit"}},
		QualifiedExpiryIndexQuery: query{`SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] WHERE n.nspname = COALESCE($1::text, current_schema()) AND c.relname = $2 AND a.attname = $3`, []any{"app", "visit", "expiry"}},
		Lock:                      dialect.Lock{},
		DDLTransaction:            [3]string{"", "", ""},
		Prepare:                   false,
		TransactionalDDL:          true,
	},
	"mysql": {
		Statements: dialect.Statements{
			Load:       "SELECT `session_data`, `created`, `expiry`, `version` FROM `visit` WHERE `visit_key` = ? AND `expiry` > ?",
			LoadLocked: "SELECT `session_data`, `created`, `expiry`, `version` FROM `visit` WHERE `visit_key` = ? AND `expiry` > ? FOR UPDATE",
			Insert:     "INSERT INTO `visit` (`visit_key`,`session_data`,`created`,`expiry`,`version`) VALUES (?,?,?,?,1)",
			Update:     "UPDATE `visit` FORCE INDEX (PRIMARY) SET `session_data` = ?, `expiry` = CASE WHEN `expiry` < ? THEN ? ELSE `expiry` END, `version` = `version` + 1 WHERE `visit_key` = ? AND `version` = ? AND `expiry` > ?",
			UpdateAny:  "UPDATE `visit` FORCE INDEX (PRIMARY) SET `session_data` = ?, `expiry` = CASE WHEN `expiry` < ? THEN ? ELSE `expiry` END, `version` = `version` + 1 WHERE `visit_key` = ? AND `expiry` > ? AND `version` >= 0",
			Renew:      "UPDATE `visit` FORCE INDEX (PRIMARY) SET `visit_key` = ?, `session_data` = ?, `expiry` = CASE WHEN `expiry` < ? THEN ? ELSE `expiry` END, `version` = `version` + 1 WHERE `visit_key` = ? AND `version` = ? AND `expiry` > ?",
			Touch:      "UPDATE `visit` FORCE INDEX (PRIMARY) SET `expiry` = ? WHERE `visit_key` = ? AND `expiry` < ? AND `expiry` > ? AND `version` >= 0",
			End:        "UPDATE `visit` FORCE INDEX (PRIMARY) SET `session_data` = NULL, `expiry` = ?, `version` = `version` + 1 WHERE `visit_key` = ? AND `expiry` > ? AND `version` >= 0",
			Delete:     "DELETE FROM `visit` WHERE `visit_key` = ? AND `version` >= 0",
			Forward:    "INSERT INTO `visit` (`visit_key`,`session_data`,`created`,`expiry`,`version`) VALUES (?,?,?,?,-1)",
		},
		Sweep500: dialect.SweepStatements{
			Clear:       "UPDATE `visit` SET `session_data` = NULL WHERE `expiry` >= ? AND `expiry` <= ? AND `session_data` IS NOT NULL AND `visit_key` <> ? ORDER BY `expiry` LIMIT 500",
			Delete:      "DELETE FROM `visit` WHERE `expiry` >= ? AND `expiry` <= ? AND `visit_key` <> ? ORDER BY `expiry` LIMIT 500",
			ClearBound:  "SELECT `expiry` FROM `visit` WHERE `expiry` >= ? AND `expiry` <= ? AND `session_data` IS NOT NULL AND `visit_key` <> ? ORDER BY `expiry` LIMIT 1 OFFSET 499",
			DeleteBound: "SELECT `expiry` FROM `visit` WHERE `expiry` >= ? AND `expiry` <= ? AND `visit_key` <> ? ORDER BY `expiry` LIMIT 1 OFFSET 499",
			Isolation:   sql.LevelReadCommitted,
			Lease: dialect.LeaseStatements{
				Acquire: "UPDATE `visit` SET `session_data` = ?, `expiry` = ?, `version` = `version` + 1 WHERE `visit_key` = ? AND (`expiry` <= ? OR `session_data` = ?)",
				Insert:  "INSERT INTO `visit` (`visit_key`,`session_data`,`created`,`expiry`,`version`) VALUES (?,?,?,?,1)",
				Read:    "SELECT `session_data`, `expiry` FROM `visit` WHERE `visit_key` = ?",
				Renew:   "UPDATE `visit` SET `expiry` = ?, `version` = `version` + 1 WHERE `visit_key` = ? AND `session_data` = ?",
			},
		},
		CreateTable: []string{
			"CREATE TABLE IF NOT EXISTS `visit` (`visit_key` VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, `session_data` MEDIUMBLOB NULL, `created` DATETIME(6) NOT NULL, `expiry` DATETIME(6) NOT NULL, `version` BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (`visit_key`), KEY `visit_expiry_idx` (`expiry`)) ENGINE=InnoDB",
		},
		AddColumn: map[visit.Column]string{
			visit.ColData:    "ALTER TABLE `visit` ADD COLUMN `session_data` MEDIUMBLOB NULL",
			visit.ColCreated: "ALTER TABLE `visit` ADD COLUMN `created` DATETIME(6) NOT NULL DEFAULT '1970-01-01 00:00:00'",
			visit.ColExpiry:  "ALTER TABLE `visit` ADD COLUMN `expiry` DATETIME(6) NOT NULL DEFAULT '1970-01-01 00:00:00'",
			visit.ColVersion: "ALTER TABLE `visit` ADD COLUMN `version` BIGINT NOT NULL DEFAULT 0",
		},
		CreateExpiryIndex: "CREATE INDEX `visit_expiry_idx` ON `visit` (`expiry`)",
		NormalizeTimes:    nil,
		ColumnsQuery:      query{`SELECT column_name FROM information_schema.columns WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?`, []any{nil, "visit"}},
		ExpiryIndexQuery:  query{`SELECT count(*) FROM information_schema.statistics WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND column_name = ? AND seq_in_index = 1`, []any{nil, "visit", "expiry"}},
		QualifiedCreateTable: []string{
			"CREATE TABLE IF NOT EXISTS `app`.`visit` (`visit_key` VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, `session_data` MEDIUMBLOB NULL, `created` DATETIME(6) NOT NULL, `expiry` DATETIME(6) NOT NULL, `version` BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (`visit_key`), KEY `visit_expiry_idx` (`expiry`)) ENGINE=InnoDB",
		},
		QualifiedColumnsQuery:     query{`SELECT column_name FROM information_schema.columns WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?`, []any{"app", "visit"}},
		QualifiedExpiryIndexQuery: query{`SELECT count(*) FROM information_schema.statistics WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND column_name = ? AND seq_in_index = 1`, []any{"app", "visit", "expiry"}},
		Lock:                      dialect.Lock{},
		DDLTransaction:            [3]string{"", "", ""},
		Prepare:                   true,
		TransactionalDDL:          false,
	},
	"sqlite": {
		Statements: dialect.Statements{
			Load:       `SELECT "session_data", "created", "expiry", "version" FROM "visit" WHERE "visit_key" = ? AND "expiry" > ?`,
			LoadLocked: `SELECT "session_data", "created", "expiry", "version" FROM "visit" WHERE "visit_key" = ? AND "expiry" > ?`,
			TakeLock:   `UPDATE "visit" SET "version" = "version" WHERE 0`,
			Insert:     `INSERT INTO "visit" ("visit_key","session_data","created","expiry","version") VALUES (?,?,?,?,1)`,
			Update:     `UPDATE "visit" SET "session_data" = ?, "expiry" = CASE WHEN "expiry" < ? THEN ? ELSE "expiry" END, "version" = "version" + 1 WHERE "visit_key" = ? AND "version" = ? AND "expiry" > ?`,
			UpdateAny:  `UPDATE "visit" SET "session_data" = ?, "expiry" = CASE WHEN "expiry" < ? THEN ? ELSE "expiry" END, "version" = "version" + 1 WHERE "visit_key" = ? AND "expiry" > ? AND "version" >= 0`,
			Renew:      `UPDATE "visit" SET "visit_key" = ?, "session_data" = ?, "expiry" = CASE WHEN "expiry" < ? THEN ? ELSE "expiry" END, "version" = "version" + 1 WHERE "visit_key" = ? AND "version" = ? AND "expiry" > ?`,
			Touch:      `UPDATE "visit" SET "expiry" = ? WHERE "visit_key" = ? AND "expiry" < ? AND "expiry" > ? AND "version" >= 0`,
			End:        `UPDATE "visit" SET "session_data" = NULL, "expiry" = ?, "version" = "version" + 1 WHERE "visit_key" = ? AND "expiry" > ? AND "version" >= 0`,
			Delete:     `DELETE FROM "visit" WHERE "visit_key" = ? AND "version" >= 0`,
			Forward:    `INSERT INTO "visit" ("visit_key","session_data","created","expiry","version") VALUES (?,?,?,?,-1)`,
		},
		Sweep500: dialect.SweepStatements{
			Clear:     `UPDATE "visit" SET "session_data" = NULL WHERE rowid IN (SELECT rowid FROM "visit" WHERE "expiry" >= ?1 AND "expiry" <= ?2 AND "session_data" IS NOT NULL AND "visit_key" <> ?3 ORDER BY "expiry" LIMIT 500) AND "expiry" <= ?2 AND "session_data" IS NOT NULL RETURNING "expiry"`,
			Delete:    `DELETE FROM "visit" WHERE rowid IN (SELECT rowid FROM "visit" WHERE "expiry" >= ?1 AND "expiry" <= ?2 AND "visit_key" <> ?3 ORDER BY "expiry" LIMIT 500) AND "expiry" <= ?2 RETURNING "expiry"`,
			Returning: true,
			Lease: dialect.LeaseStatements{
				Acquire: `UPDATE "visit" SET "session_data" = ?, "expiry" = ?, "version" = "version" + 1 WHERE "visit_key" = ? AND ("expiry" <= ? OR "session_data" = ?)`,
				Insert:  `INSERT INTO "visit" ("visit_key","session_data","created","expiry","version") VALUES (?,?,?,?,1)`,
				Read:    `SELECT "session_data", "expiry" FROM "visit" WHERE "visit_key" = ?`,
				Renew:   `UPDATE "visit" SET "expiry" = ?, "version" = "version" + 1 WHERE "visit_key" = ? AND "session_data" = ?`,
			},
		},
		CreateTable: []string{
			`CREATE TABLE IF NOT EXISTS "visit" ("visit_key" VARCHAR(40) NOT NULL, "session_data" BLOB NULL, "created" INTEGER NOT NULL, "expiry" INTEGER NOT NULL, "version" INTEGER NOT NULL DEFAULT 0, PRIMARY KEY ("visit_key"))`,
			`CREATE INDEX IF NOT EXISTS "visit_expiry_idx" ON "visit" ("expiry")`,
		},
		AddColumn: map[visit.Column]string{
			visit.ColData:    `ALTER TABLE "visit" ADD COLUMN "session_data" BLOB NULL`,
			visit.ColCreated: `ALTER TABLE "visit" ADD COLUMN "created" INTEGER NOT NULL DEFAULT 0`,
			visit.ColExpiry:  `ALTER TABLE "visit" ADD COLUMN "expiry" INTEGER NOT NULL DEFAULT 0`,
			visit.ColVersion: `ALTER TABLE "visit" ADD COLUMN "version" INTEGER NOT NULL DEFAULT 0`,
		},
		CreateExpiryIndex: `CREATE INDEX IF NOT EXISTS "visit_expiry_idx" ON "visit" ("expiry")`,
		NormalizeTimes: []string{
			`UPDATE "visit" SET "created" = COALESCE(unixepoch("created") * 1000000 + CAST(ROUND((unixepoch("created", 'subsec') - unixepoch("created")) * 1000) AS INTEGER) * 1000, 0) WHERE typeof("created") = 'text'`,
			`UPDATE "visit" SET "expiry" = COALESCE(unixepoch("expiry") * 1000000 + CAST(ROUND((unixepoch("expiry", 'subsec') - unixepoch("expiry")) * 1000) AS INTEGER) * 1000, 0) WHERE typeof("expiry") = 'text'`,
		},
		ColumnsQuery:     query{`SELECT name FROM pragma_table_info(?)`, []any{"visit"}},
		ExpiryIndexQuery: query{`SELECT count(*) FROM pragma_index_list(?) AS il, pragma_index_info(il.name) AS ii WHERE ii.seqno = 0 AND ii.name = ?`, []any{"visit", "expiry"}},
		QualifiedCreateTable: []string{
			`CREATE TABLE IF NOT EXISTS "app"."visit" ("visit_key" VARCHAR(40) NOT NULL, "session_data" BLOB NULL, "created" INTEGER NOT NULL, "expiry" INTEGER NOT NULL, "version" INTEGER NOT NULL DEFAULT 0, PRIMARY KEY ("visit_key"))`,
			`CREATE INDEX IF NOT EXISTS "app"."visit_expiry_idx" ON "visit" ("expiry")`,
		},
		QualifiedColumnsQuery:     query{`SELECT name FROM pragma_table_info(?, ?)`, []any{"visit", "app"}},
		QualifiedExpiryIndexQuery: query{`SELECT count(*) FROM pragma_index_list(?, ?) AS il, pragma_index_info(il.name, ?) AS ii WHERE ii.seqno = 0 AND ii.name = ?`, []any{"visit", "app", "app", "expiry"}},
		Lock:                      dialect.Lock{},
		DDLTransaction:            [3]string{"BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"},
		Prepare:                   true,
		TransactionalDDL:          true,
	},
}

// dialects returns the shipped dialects by name.
func dialects() map[string]dialect.Dialect {
	return map[string]dialect.Dialect{
		"postgres": dialect.Postgres(),
		"mysql":    dialect.MySQL(),
		"sqlite":   dialect.SQLite(),
	}
}

// TestPinnedSQL compares every statement each dialect emits with the text
// pinned above.
func TestPinnedSQL(t *testing.T) {
	for name, d := range dialects() {
		t.Run(name, func(t *testing.T) {
			want, ok := golden[name]
			if !ok {
				t.Fatalf("no pinned SQL for dialect %q", name)
			}
			if d.Name() != name {
				t.Errorf("Name() = %q", d.Name())
			}
			tab := visit.Default()
			st, err := d.Statements(tab)
			if err != nil {
				t.Fatal(err)
			}
			compareFields(t, "Statements", reflect.ValueOf(st), reflect.ValueOf(want.Statements))
			sw, err := d.Sweep(tab, 500)
			if err != nil {
				t.Fatal(err)
			}
			compareFields(t, "Sweep(500)", reflect.ValueOf(sw), reflect.ValueOf(want.Sweep500))
			same(t, "CreateTable", d.CreateTable(tab), want.CreateTable)
			for _, c := range visit.Columns[1:] {
				same(t, "AddColumn("+c.String()+")", d.AddColumn(tab, c), want.AddColumn[c])
			}
			same(t, "CreateExpiryIndex", d.CreateExpiryIndex(tab), want.CreateExpiryIndex)
			same(t, "NormalizeTimes", d.NormalizeTimes(tab), want.NormalizeTimes)
			q, args := d.ColumnsQuery(tab)
			same(t, "ColumnsQuery", query{q, args}, want.ColumnsQuery)
			q, args = d.ExpiryIndexQuery(tab)
			same(t, "ExpiryIndexQuery", query{q, args}, want.ExpiryIndexQuery)
			qualified := tab.WithName("app.visit")
			same(t, "CreateTable(app.visit)", d.CreateTable(qualified), want.QualifiedCreateTable)
			q, args = d.ColumnsQuery(qualified)
			same(t, "ColumnsQuery(app.visit)", query{q, args}, want.QualifiedColumnsQuery)
			q, args = d.ExpiryIndexQuery(qualified)
			same(t, "ExpiryIndexQuery(app.visit)", query{q, args}, want.QualifiedExpiryIndexQuery)
			same(t, "Lock", d.Lock(), want.Lock)
			begin, commit, rollback := d.DDLTransaction()
			same(t, "DDLTransaction", [3]string{begin, commit, rollback}, want.DDLTransaction)
			same(t, "Prepare", d.Prepare(), want.Prepare)
			same(t, "TransactionalDDL", d.TransactionalDDL(), want.TransactionalDDL)
		})
	}
}

// TestSweepBatchSizeIsSpliced checks the one part of the sweep statements
// that depends on the batch size, and that invalid sizes and tables fail.
func TestSweepBatchSizeIsSpliced(t *testing.T) {
	for name, d := range dialects() {
		t.Run(name, func(t *testing.T) {
			tab := visit.Default()
			sw1, err := d.Sweep(tab, 1)
			if err != nil {
				t.Fatal(err)
			}
			sw500 := golden[name].Sweep500
			for _, pair := range [][2]string{{sw1.Clear, sw500.Clear}, {sw1.Delete, sw500.Delete}} {
				if got, want := pair[0], strings.ReplaceAll(pair[1], "500", "1"); got != want {
					t.Errorf("batch 1:\n got %q\nwant %q", got, want)
				}
			}
			if sw500.ClearBound != "" {
				if got, want := sw1.ClearBound, strings.ReplaceAll(sw500.ClearBound, "OFFSET 499", "OFFSET 0"); got != want {
					t.Errorf("ClearBound batch 1:\n got %q\nwant %q", got, want)
				}
			}
			if _, err := d.Sweep(tab, 0); err == nil {
				t.Error("Sweep accepted batch size 0")
			}
			if _, err := d.Sweep(tab.WithName("visit;"), 10); err == nil {
				t.Error("Sweep accepted an invalid table name")
			}
			if _, err := d.Statements(tab.WithName("visit`")); err == nil {
				t.Error("Statements accepted an invalid table name")
			}
		})
	}
}

// compareFields reports each differing field of two structs of one type,
// descending into nested structs.
func compareFields(t *testing.T, what string, got, want reflect.Value) {
	t.Helper()
	for i := 0; i < got.NumField(); i++ {
		name := what + "." + got.Type().Field(i).Name
		g, w := got.Field(i), want.Field(i)
		if g.Kind() == reflect.Struct {
			compareFields(t, name, g, w)
			continue
		}
		same(t, name, g.Interface(), w.Interface())
	}
}

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s changed:\n got %#v\nwant %#v", what, got, want)
	}
}
