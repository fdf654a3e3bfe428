# The two commands: `make run` and `make test`. Everything else is plumbing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ./blobstore-data
PYTEST_ARGS ?=

.PHONY: run test lint fmt quick bench clean help

help:
	@echo "make run    - set up .venv and start a local blobstore cluster (S3 on 127.0.0.1:9000)"
	@echo "make test   - set up .venv and run lint, type checks and the whole test suite"
	@echo "make quick  - fast subset: unit + sim tests (no slow, integration or e2e)"
	@echo "make lint   - ruff check, ruff format --check, mypy"
	@echo "make bench  - run the benchmarks under bench/"

# Rebuild the environment when it is missing or the project metadata changed (stale).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	    echo "python3 -m venv failed; trying virtualenv"; \
	    $(PYTHON) -m pip install --user virtualenv && $(PYTHON) -m virtualenv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/blobstore server --data $(DATA)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP)
	@bash scripts/install-test-deps.sh
	$(MAKE) lint
	$(BIN)/python scripts/run_pytest.py $(PYTEST_ARGS)

quick: $(STAMP)
	$(BIN)/python scripts/run_pytest.py -m 'not slow and not integration and not e2e' $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/rpc_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
