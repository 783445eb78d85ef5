# Two commands do all setup on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080
DB     ?= sqlite:///slm.db
AUDIT_KEY ?= slm-audit.key

.PHONY: install run lint test test-fast test-ahead check scenarios fuzz bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,lint,postgresql]'
	touch $(STAMP)

install: $(STAMP)

# Serve the shipped rules on SQLite; get a token from a second terminal (see the output).
# The audit key is made (mode 0600) on first start; keep it apart from backups of the database.
run: $(STAMP)
	@echo "Tokens: $(BIN)/slm token create --role admin --db $(DB)   (roles: monitor, owner, auditor, admin)"
	$(BIN)/slm serve --rules rules --db $(DB) --host $(HOST) --port $(PORT) --audit-key-file $(AUDIT_KEY)

# ruff (rule sets and line length in pyproject.toml) and mypy (strict for schemas/,
# engine/lang and engine/eval): CI runs this before the tests and wants no finding.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# The whole suite; PostgreSQL cases run if the server at SLM_TEST_POSTGRES_URL answers
# (CI sets SLM_REQUIRE_POSTGRES=1 so that they must). Two processes (pytest-xdist), each
# taking whole modules: most of the time is spent waiting on servers and databases.
WORKERS ?= 2
PARALLEL := -n $(WORKERS) --dist loadfile
test: $(STAMP)
	$(BIN)/slm check rules/
	$(BIN)/slm test fixtures/scenarios/
	$(BIN)/python -m pytest $(PARALLEL)

# The quick subset, for the edit-and-test loop (under two minutes): every test except those
# marked slow (over ~2 s), browser (Chromium) or postgres (each PostgreSQL case; the SQLite
# case of the same test runs). `make test` runs them all.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not browser and not postgres"

# The scenarios and the tests that read this machine's clock (marked wallclock) once more,
# with the clock two years ahead under Debian's faketime: what passes only near the day it
# was written fails today. The monotonic clock stays real, or libfaketime 0.9.10 hangs
# every timed wait (tests/conftest.py holds the other half of that workaround).
AHEAD ?= +2y
CLOCK_AHEAD := DONT_FAKE_MONOTONIC=1 faketime -f '$(AHEAD)'
test-ahead: $(STAMP)
	$(CLOCK_AHEAD) $(BIN)/slm test fixtures/scenarios/
	$(CLOCK_AHEAD) $(BIN)/python -m pytest $(PARALLEL) -m wallclock

check: $(STAMP)
	$(BIN)/slm check rules/

scenarios: $(STAMP)
	$(BIN)/slm test fixtures/scenarios/ --coverage

# The fuzzers, failing on any finding. The API: schemathesis with every check against a real
# slm serve of the shipped rules, once per role (tests/support/fuzz.py, schemathesis.toml;
# SLM_API_FUZZ_EXAMPLES per operation, default 25: some minutes). Rule files and facts:
# hypothesis with many more examples (SLM_FUZZ_EXAMPLES).
fuzz: $(STAMP)
	$(BIN)/python -m tests.support.fuzz
	SLM_FUZZ_EXAMPLES=$${SLM_FUZZ_EXAMPLES:-300} $(BIN)/python -m pytest tests/lang/test_fuzz_inputs.py

# Benchmarks (docs/BENCHMARKS.md); each prints its baseline measured in the same run.
bench: $(STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/engine.py --clocks 25000
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/restart.py --facts 100000
	$(BIN)/python bench/reload.py --facts 100000
	$(BIN)/python bench/load.py
	$(BIN)/python bench/clockpage.py --http
	$(BIN)/python bench/snapshots.py
	$(BIN)/python bench/failover.py --db $${SLM_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}
	$(BIN)/python bench/partitions.py --db $${SLM_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
