# tradewatch: `make run` starts the main job on the embedded default; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test bench lint services browser clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,train]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

DEMO_PASSWORD ?= tradewatch-demo

run: install
	$(BIN)/tradewatch demo --if-empty
	@echo "dashboard login: any user name, password $(DEMO_PASSWORD)"
	TRADEWATCH_DASHBOARD_PASSWORD=$(DEMO_PASSWORD) $(BIN)/tradewatch dashboard

services:
	bash scripts/ensure-services.sh

browser:
	bash scripts/ensure-browser.sh

TEST_WORKERS ?= 2

test: install services browser
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .

bench: install services
	$(BIN)/python -m scripts.bench $(BENCH_ARGS)
	$(BIN)/python -m scripts.bench_alerts
	$(BIN)/python -m scripts.bench_dashboard
	$(BIN)/python -m scripts.bench_generator

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
