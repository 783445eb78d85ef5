# Two commands do all setup on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test check scenarios bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/slm check rules/
	$(BIN)/slm test fixtures/scenarios/
	$(BIN)/python -m pytest

run: $(STAMP)
	@echo "The HTTP service (slm serve) is not built yet; checking the shipped rules instead."
	$(BIN)/slm check rules/

check: $(STAMP)
	$(BIN)/slm check rules/

scenarios: $(STAMP)
	$(BIN)/slm test fixtures/scenarios/ --coverage

bench: $(STAMP)
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
