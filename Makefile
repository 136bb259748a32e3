# leadflow — `make demo` and `make test` work on a fresh machine (Python 3.11+).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PG_URL := postgresql://postgres@127.0.0.1:5432/test

.PHONY: demo test bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.app: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(VENV)/.app $@

## Simulate a year of a business in a fresh workspace, print the report, serve the API.
demo: $(VENV)/.app
	$(BIN)/leadflow demo $(ARGS)

# The browser tests drive Debian's Chromium (Playwright cannot download browsers here).
$(VENV)/.chromium: | $(BIN)/python
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@touch $@

## The whole test suite; on PostgreSQL too when a server answers at $(PG_URL).
test: $(VENV)/.test $(VENV)/.chromium
	@if [ -z "$$LEADFLOW_TEST_POSTGRES_URL" ] && $(BIN)/python -c "import psycopg; psycopg.connect('$(PG_URL)', connect_timeout=3).close()" 2>/dev/null; then \
		export LEADFLOW_TEST_POSTGRES_URL=$(PG_URL); echo "PostgreSQL tests: $(PG_URL)"; \
	else echo "PostgreSQL tests: $${LEADFLOW_TEST_POSTGRES_URL:-off (no server at $(PG_URL))}"; fi; \
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Benchmarks: print figures and write bench/results/*.json.
bench: $(VENV)/.test
	@command -v wrk >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -qq wrk >/dev/null; }
	@if [ -z "$$LEADFLOW_BENCH_POSTGRES_URL" ] && $(BIN)/python -c "import psycopg; psycopg.connect('$(PG_URL)', connect_timeout=3).close()" 2>/dev/null; then \
		export LEADFLOW_BENCH_POSTGRES_URL=$(PG_URL); fi; \
	$(BIN)/python -m bench $(ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(VENV)/.test
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
