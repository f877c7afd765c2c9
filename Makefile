# leadmail — `make run` and `make test` set everything up themselves.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config.example.toml
DEMO   ?= demo-inbox

.PHONY: run test lint typecheck check bench clean services

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found (Debian: apt-get install python3.11 python3.11-venv)"; exit 1; }
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || bash scripts/ensure-debs.sh python3.11-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: the main job on the embedded default (SQLite + demo Maildir)
run: $(STAMP)
	$(BIN)/leadmail --config $(CONFIG) demo write $(DEMO)
	$(BIN)/leadmail --config $(CONFIG) init
	$(BIN)/leadmail --config $(CONFIG) ingest $(DEMO)
	$(BIN)/leadmail --config $(CONFIG) leads list

## services: the servers the tests need (PostgreSQL)
services:
	bash scripts/ensure-postgres.sh

## test: lint, type-check, then the whole suite on SQLite and PostgreSQL
test: $(STAMP) services check
	$(BIN)/pytest -q -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint typecheck

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) leadmail.db leadmail.db-* leadmail-data $(DEMO) .pytest_cache .mypy_cache .ruff_cache
