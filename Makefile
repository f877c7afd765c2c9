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

## run: the main job on the embedded default: `leadmail run` watching the demo Maildir (SQLite)
run: $(STAMP)
	$(BIN)/leadmail --config $(CONFIG) demo write $(DEMO)
	$(BIN)/leadmail --config $(CONFIG) init
	$(BIN)/leadmail --config $(CONFIG) poll --once --account demo
	$(BIN)/leadmail --config $(CONFIG) demo tour
	@echo "leadmail run: watching $(DEMO)/ (new files in $(DEMO)/new/ become leads within seconds)."
	@echo "  Leads:  $(BIN)/leadmail --config $(CONFIG) leads list     (in another terminal)"
	@echo "  Status: $(BIN)/leadmail --config $(CONFIG) status"
	@echo "  Stop:   Ctrl-C (or SIGTERM); the message in hand is finished first."
	$(BIN)/leadmail --config $(CONFIG) run

## services: the servers the tests need: PostgreSQL running; Dovecot and redis-server installed
## (the tests start their own throwaway Dovecot, redis-server and aiosmtpd on free loopback ports)
services:
	bash scripts/ensure-debs.sh dovecot-imapd openssl redis-server
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
	$(BIN)/python bench/imap.py
	$(BIN)/python bench/rules.py
	$(BIN)/python bench/outbound.py
	$(BIN)/python bench/reminders.py
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) leadmail.db leadmail.db-* leadmail-data $(DEMO) .pytest_cache .mypy_cache .ruff_cache
