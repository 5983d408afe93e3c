# PRSNL Media — every task a developer or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PYTEST_ARGS ?=
# Port of make demo's media server; make run opens only this port of 127.0.0.1 to captures.
DEMO_MEDIA_PORT ?= 8765

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}'

.PHONY: deps
deps: ## Install what is missing (ffmpeg, uv, Python deps) and start PostgreSQL and RabbitMQ
	@scripts/bootstrap.sh

.PHONY: run
run: deps ## Start every service against local RabbitMQ and PostgreSQL; prints the API address and a key
	@scripts/run.sh

.PHONY: test
test: deps lint typecheck ## Run the whole suite: lint, types, unit, integration, end-to-end
	$(UV) run pytest tests $(PYTEST_ARGS)

.PHONY: test-faults
test-faults: deps ## The full fault suite: every fault with 300 captures per fault, 200 in flight; prints the table
	$(UV) run python -m tests.faults --full

.PHONY: test-unit
test-unit: deps ## Unit tests only (no broker, no database)
	$(UV) run pytest tests/unit $(PYTEST_ARGS)

.PHONY: lint
lint: ## ruff lint and format check
	$(UV) run ruff check .
	$(UV) run ruff format --check .

.PHONY: format
format: ## Apply ruff's fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

.PHONY: typecheck
typecheck: ## mypy (strict) on the library, every service and the client
	$(UV) run mypy libs/common/src services/*/src clients/*/src

.PHONY: bench
bench: ## Benchmarks with ratios against raw yt-dlp, ffmpeg and nginx measured in the same run
	@WITH_BENCH_TOOLS=1 scripts/bootstrap.sh
	$(UV) run python -m bench

.PHONY: demo
demo: ## Fill a running install (make run) with sample items made from generated clips
	$(UV) run python scripts/demo.py --media-port $(DEMO_MEDIA_PORT)

.PHONY: ytdlp-upgrade
ytdlp-upgrade: ## Upgrade the pinned yt-dlp to the newest release (or VERSION=...), lock and sync
	@scripts/ytdlp.sh upgrade $(VERSION)

.PHONY: ytdlp-rollback
ytdlp-rollback: ## Go back to the yt-dlp version pinned before the last upgrade
	@scripts/ytdlp.sh rollback

BACKUP_DIR ?= var/backups

.PHONY: backup
backup: ## Back up the catalog and the media it references into BACKUP_DIR (var/backups); later backups copy only new files
	$(UV) run prsnl-storage-janitor backup --to $(BACKUP_DIR)

.PHONY: restore
restore: ## Restore FROM=<backup dir or folder> into an empty install; add VERIFY=1 to only check it
	@test -n "$(FROM)" || { echo "usage: make restore FROM=var/backups [VERIFY=1]"; exit 2; }
	$(UV) run prsnl-storage-janitor restore --from $(FROM) $(if $(VERIFY),--verify)

.PHONY: clean
clean: ## Remove local state of `make run` (var/) and caches
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
