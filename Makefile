# The template's own commands. On a fresh clone `make test` is all you need:
# it builds .venv from the lock, then bakes and tests every supported answer.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null)
# Where `make bake` writes the project; cookiecutter refuses to overwrite one already there.
OUT ?= build
# Extra answers for `make bake`, e.g. ARGS='project_name="Shop API" license=Apache-2.0'.
ARGS ?=

export UV_PYTHON_DOWNLOADS := never

.DEFAULT_GOAL := help
.PHONY: help install test record-times lint format bake lock clean bench

help: ## List the targets
	@grep -E '^[a-z.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Create .venv with the template's locked test tools

$(VENV)/.installed: requirements-dev.lock
ifdef UV
	uv venv --allow-existing --python "$(PYTHON)" $(VENV)
	uv pip install --python $(BIN)/python --require-hashes -r requirements-dev.lock
else
	"$(PYTHON)" -m venv $(VENV)
	$(BIN)/python -m pip install --require-hashes -r requirements-dev.lock
endif
	@touch $@

test: install ## Bake every supported answer and run the hooks', bakes' and baked projects' tests
	$(BIN)/pytest $(PYTEST_ARGS)

# Only a full run that passes rewrites the record (tests/suite_times.py checks), so no
# PYTEST_ARGS here: commit the new tests/suite-times.json with the change that moved it.
record-times: install ## Run the whole suite and rewrite tests/suite-times.json, its time by file
	TEMPLATE_RECORD_TIMES=1 $(BIN)/pytest

lint: install ## Check the hooks and the template tests with ruff
	$(BIN)/ruff check hooks tests scripts bench local_extensions.py
	$(BIN)/ruff format --check hooks tests scripts bench local_extensions.py

format: install ## Fix what ruff can fix in the hooks and the template tests
	$(BIN)/ruff check --fix hooks tests scripts bench local_extensions.py
	$(BIN)/ruff format hooks tests scripts bench local_extensions.py

bake: install ## Bake the default project into build/ (or OUT=dir; change answers with ARGS=...)
	$(BIN)/cookiecutter --no-input --output-dir "$(OUT)" . $(ARGS)

bench: install ## Measure the baked services (throughput, workers, memory, start-up); BENCH_QUICK=1 for a smoke run
	$(BIN)/python -m bench

lock: install ## Re-resolve requirements-dev.lock after changing requirements-dev.in
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes requirements-dev.in -o requirements-dev.lock

clean: ## Remove .venv, build/ and the caches
	rm -rf $(VENV) build .pytest_cache .ruff_cache
