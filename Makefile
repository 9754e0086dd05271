# Tally: the two commands that matter are `make demo` and `make test`.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
# uv from the machine, or bootstrapped once into .tools/ with pip.
UV    := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: venv demo test lint bench bench-10m bench-days services-up services-down services-status web vendor clean

venv: $(VENV)/.synced

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

# Bytecode compiled once here: nothing else writes it where PYTHONDONTWRITEBYTECODE is set,
# and every process (each dbt build, the gate's GX) would compile its imports again (GX: 10 s).
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python 3.11 --compile-bytecode
	@touch $@

demo: venv  ## run the embedded sample business day end to end and print where the reports are
	$(BIN)/tally demo

test: venv  ## run the test suite against real PostgreSQL, S3, dbt, GX and Airflow
	$(BIN)/pytest

# `make bench ROWS=10000000` (or `make bench-10m`) for other scales; BENCH_FLAGS=--no-baselines.
ROWS ?= 100000 1000000
bench: venv  ## time each stage at 100k and 1M transactions (own services); docs/benchmarks.md
	$(BIN)/tally bench --rows $(ROWS) $(BENCH_FLAGS)

bench-10m: venv  ## the same at ten million transactions a day (about 30 minutes, 24 GiB RAM)
	$(BIN)/tally bench --rows 10000000 $(BENCH_FLAGS)

# Beside another checkout's bench: BENCH_FLAGS="--slot 1" (its services' ports, 0-8).
bench-days: venv  ## 30 consecutive days of 100k transactions on one warehouse: the cost per day
	$(BIN)/tally bench --rows 100000 --days 30 $(BENCH_FLAGS)

lint: venv
	$(BIN)/ruff check .

services-up: venv
	$(BIN)/tally services up

services-down: venv
	$(BIN)/tally services down

services-status: venv
	$(BIN)/tally services status

web: venv  ## the finance workbench in the background (stopped by make services-down)
	$(BIN)/tally web

# Development only (needs npm): fetch the pinned htmx and ECharts again from the npm registry,
# write them with their licences and VENDORED.md into the package, and check them against it.
vendor: venv
	$(BIN)/python -m tally.devtools.vendor_assets

clean: services-down
	rm -rf .tally dbt_project/target dbt_project/logs
