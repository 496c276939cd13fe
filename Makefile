# The two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= deploy/example.toml

.PHONY: run serve test lint unit demo bench fuzz screenshots deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

deps:
	bash scripts/install-system-deps.sh

# The gateway on deploy/example.toml, inside a local sandbox (DNS + upstream sink on loopback).
# For your own config: make serve CONFIG=path/to/gateway.toml
run: $(STAMP) deps
	$(BIN)/python scripts/sandbox.py

serve: $(STAMP)
	$(BIN)/python -m gateway serve --config $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check gateway tests scripts bench
	$(BIN)/mypy

test: $(STAMP) deps lint
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

demo: $(STAMP) deps
	$(BIN)/python scripts/demo.py

# Refresh docs/screenshots/ from the browser tests (headless Chromium).
screenshots: $(STAMP) deps
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest -q tests/browser

bench: $(STAMP) deps
	$(BIN)/python -m bench

# Coverage-guided fuzzing (atheris) of every target in tests/fuzz/targets.py, FUZZ_SECONDS each.
# A failing input is left in var/fuzz/<target>/crash-*: add it to tests/fuzz/regressions/<target>/.
FUZZ_SECONDS ?= 120
fuzz: $(STAMP)
	for t in mime html insert dkim csv address config dmarc token headers mailto data dkim_verify; do \
	  $(BIN)/python -m tests.fuzz $$t --seconds $(FUZZ_SECONDS) --work var/fuzz/$$t || exit 1; \
	done

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
