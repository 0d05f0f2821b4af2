# The workspace's commands. `make test` sets everything up on a fresh machine and runs the
# checks and the tests; the other targets reuse the same virtual environment.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help install demo test lint schemas check-schemas bench clean

help:
	@echo "make demo     set up .venv and run the demo: the OKX simulator, an engine, three bots"
	@echo "make test     set up .venv, check generated code, lint, type-check, run the tests"
	@echo "make lint     ruff and mypy only"
	@echo "make schemas  regenerate core/src/polyvn/{models,names}.py from schemas/"
	@echo "make bench    run the benchmarks under bench/ (they print figures)"
	@echo "make clean    remove .venv and caches"

$(STAMP): constraints.txt pyproject.toml core/pyproject.toml plugins/exchange-okx/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e core -e plugins/exchange-okx -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/polyvn demo --exchange okx

check-schemas: install
	$(BIN)/polyvn schemas check

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check core plugins/exchange-okx tests bench
	$(BIN)/mypy

test: check-schemas lint
	$(BIN)/pytest $(PYTEST_ARGS)

schemas: install
	$(BIN)/polyvn schemas generate

bench: install
	@set -e; for b in bench/*.py; do [ -e "$$b" ] || continue; echo "== $$b"; $(BIN)/python "$$b"; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
