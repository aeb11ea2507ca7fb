# Handoff's developer commands: `make` alone lists them.
#
# Targets that need Postgres (run, test, bench, chaos) run through scripts/with-db.sh: it
# uses DATABASE_URL when set, else starts the project-local cluster (scripts/db.sh, data in
# .pgdata/) and exports its URL.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

# Tools run with `go run module@version` instead of `tool` lines in go.mod, which would pull
# their dependencies into go.sum. Pinned so that an upgrade cannot change the verdict on
# unchanged code. Build and test need neither: generated code is committed.
GOLANGCI_LINT_VERSION := v2.15.0
SQLC_VERSION := v1.31.1

WITH_DB := scripts/with-db.sh

.PHONY: help
help: ## Print this list of targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_\/-]+:.*## / { printf "  %-28s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: run
run: ## Migrate and serve on HTTP_ADDR (starts the local Postgres unless DATABASE_URL is set)
	go build -o bin/handoff ./cmd/server
	$(WITH_DB) bash -c 'bin/handoff migrate up && exec bin/handoff serve'

.PHONY: test
test: ## Run every test with the race detector (installs missing Debian packages, starts the local Postgres unless DATABASE_URL is set)
	scripts/deps.sh
	$(WITH_DB) go test -race -count=1 -timeout 12m ./...

.PHONY: test/short
test/short: ## Run the tests that need no database (go test -short)
	go test -short ./...

.PHONY: bench
bench: ## Run the benchmark suite, cmd/bench, under 10 min; BENCH_FLAGS=-quick or -only=work (installs wrk; see docs/performance.md)
	scripts/deps.sh bench
	$(WITH_DB) go run ./cmd/bench $(BENCH_FLAGS)

.PHONY: chaos
chaos: ## Run the fault suite (build tag chaos): kill -9, replicas, deploys, Postgres restart, overload; prints a ledger summary per scenario
	$(WITH_DB) go test -race -count=1 -timeout 20m -v -run Chaos -tags chaos ./cmd/server | grep -E '^(chaos:|\s*--- |ok|FAIL|PASS|panic)|_test\.go:[0-9]+:'

FUZZTIME ?= 60s

.PHONY: fuzz
fuzz: ## Fuzz request decoding and args parsing, FUZZTIME each (default 60s); seeds run in make test
	go test -run '^$$' -fuzz '^FuzzDecodeCreate$$' -fuzztime $(FUZZTIME) ./internal/httpapi
	go test -run '^$$' -fuzz '^FuzzKindParse$$' -fuzztime $(FUZZTIME) ./jobs

.PHONY: lint
lint: ## Check formatting (gofmt) and run golangci-lint
	@unformatted="$$(gofmt -l .)"; if [[ -n $$unformatted ]]; then echo "gofmt -l lists files to format:"; echo "$$unformatted"; exit 1; fi
	go run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) run --build-tags chaos ./...

# River's migrations first: sqlc reads the schema from migrations/.
.PHONY: generate
generate: generate/river-migrations generate/sqlc ## Regenerate all generated code

.PHONY: generate/sqlc
generate/sqlc: ## Regenerate internal/store from its SQL with sqlc
	go run github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION) generate -f internal/store/sqlc.yaml

.PHONY: generate/river-migrations
generate/river-migrations: ## Regenerate River's schema migrations from the pinned River module
	go generate ./migrations/...

.PHONY: verify
verify: generate ## Regenerate, then fail if generated code differs from what is committed
	git diff --exit-code
	@untracked="$$(git ls-files --others --exclude-standard -- internal/store migrations)"; if [[ -n $$untracked ]]; then echo "generated but not committed:"; echo "$$untracked"; exit 1; fi

.PHONY: tidy
tidy: ## Tidy go.mod and go.sum
	go mod tidy

.PHONY: db/start
db/start: ## Start the project-local Postgres (idempotent) and print its URL
	@scripts/db.sh start

.PHONY: db/stop
db/stop: ## Stop the project-local Postgres (idempotent)
	@scripts/db.sh stop

.PHONY: db/url
db/url: ## Print the project-local Postgres URL, and only that
	@scripts/db.sh url
