# visitsession — build, test and benchmark targets.
# Tests need PostgreSQL and MariaDB/MySQL; DSNs come from
# VISITSESSION_POSTGRES_DSN and VISITSESSION_MYSQL_DSN (defaults: the local
# servers). SQLite is embedded.

GO        ?= go
GOFLAGS   ?=
PKGS      := ./...
# Fuzz time per fuzz target for `make fuzz`.
FUZZTIME  ?= 30s
# Expired rows for `make test-sweep-big`.
SWEEP_ROWS ?= 1000000

.PHONY: all build demo test test-sqlite test-postgres test-mysql vet lint fmt \
        test-stress test-sweep-big test-browser fuzz bench bench-smoke test-galera conformance bench-peers bench-galera test-sqlmock

all: build

build:
	$(GO) build ./...

## demo: the demo web app on an embedded SQLite file (http://127.0.0.1:8080)
demo:
	$(GO) run ./cmd/visitsession demo

## test: vet, then every test with the race detector on SQLite, PostgreSQL and MariaDB
test: vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-sqlite:
	VISITSESSION_ONLY=sqlite $(GO) test -race -count=1 $(PKGS)

test-postgres:
	VISITSESSION_ONLY=postgres $(GO) test -race -count=1 $(PKGS)

test-mysql:
	VISITSESSION_ONLY=mysql $(GO) test -race -count=1 $(PKGS)

vet:
	$(GO) vet $(PKGS)

## lint: formatting and vet
lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

## conformance: the conformance suite through the CLI on SQLite, PostgreSQL and MariaDB (scratch tables)
conformance:
	$(GO) run ./cmd/visitsession conformance --driver sqlite --dsn "file:$$(mktemp -d)/conformance.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	$(GO) run ./cmd/visitsession conformance --driver postgres --dsn "$${VISITSESSION_POSTGRES_DSN:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
	$(GO) run ./cmd/visitsession conformance --driver mysql --dsn "$${VISITSESSION_MYSQL_DSN:-root@tcp(127.0.0.1:3306)/test}"

## test-sqlmock: go-sqlmock tests of every transactional path and the pinned SQL of each dialect
test-sqlmock:
	$(GO) test -race -count=1 ./sqlmocktest/

## test-stress: multi-process and high-trial concurrency tests
test-stress:
	VISITSESSION_STRESS=1 $(GO) test -count=1 -timeout 20m -run 'Stress' ./...

## test-sweep-big: sweep SWEEP_ROWS expired rows under live load on every database
test-sweep-big:
	VISITSESSION_SWEEP_ROWS=$(SWEEP_ROWS) $(GO) test -count=1 -timeout 30m -run 'Heavy' -v ./sweeper/

## bench-peers: visitsession against alexedwards/scs on PostgreSQL, MariaDB and SQLite (own module in bench/)
bench-peers:
	cd bench && $(GO) run ./cmd/peerbench -duration 10s

## test-browser: drive the demo in headless Chromium (apt-get install -y chromium)
test-browser:
	VISITSESSION_BROWSER=1 $(GO) test -count=1 -run 'TestBrowser' -v ./cmd/visitsession/

## test-galera: start a three-node MariaDB Galera cluster (scripts/galera.sh), run the galera/ tests on it, stop it
test-galera:
	trap 'scripts/galera.sh stop' EXIT; trap 'exit 130' INT TERM; \
	scripts/galera.sh start && \
	VISITSESSION_GALERA=1 $(GO) test -race -count=1 -timeout 8m -v ./galera/

## bench-galera: the read-mostly workload on three Galera nodes against one
bench-galera:
	trap 'scripts/galera.sh stop' EXIT; trap 'exit 130' INT TERM; \
	scripts/galera.sh start && \
	VISITSESSION_GALERA=1 $(GO) test -run '^$$' -bench ReadMostly -benchtime 15s -count 2 ./galera/

## fuzz: run each fuzz target for FUZZTIME (a duration, or a count of executions such as 100000x;
## with a duration go1.26 may fail a target at the deadline with "context deadline exceeded",
## golang/go#75804: no input is at fault then, and none is written to testdata)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzBinaryDecode$$' -fuzztime $(FUZZTIME) ./internal/codec/
	$(GO) test -run '^$$' -fuzz '^FuzzJSONDecode$$' -fuzztime $(FUZZTIME) ./internal/codec/
	$(GO) test -run '^$$' -fuzz '^FuzzParseToken$$' -fuzztime $(FUZZTIME) ./visit/
	$(GO) test -run '^$$' -fuzz '^FuzzValidateIdent$$' -fuzztime $(FUZZTIME) ./visit/
	$(GO) test -run '^$$' -fuzz '^FuzzMiddlewareCookie$$' -fuzztime $(FUZZTIME) ./session/
	$(GO) test -run '^$$' -fuzz '^FuzzCookieRead$$' -fuzztime $(FUZZTIME) ./session/

## bench-smoke: every in-module benchmark once, so that a broken one fails (CI)
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./session/ ./sweeper/ ./internal/codec/

## bench: benchmarks against the bare database/sql limit, per dialect
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./session/ ./sweeper/ ./internal/codec/
