# The two set-up commands (README): `make dev` runs the service, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench schema clean assets

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# GraphiQL's pinned files from the npm registry, checked by hash (api/browser/assets.py). Without
# npm, `make dev` still serves GraphQL and the console; /graphql then says how to get GraphiQL.
assets: $(STAMP)
	$(BIN)/vaxvault assets fetch

dev: $(STAMP)
	-$(BIN)/vaxvault assets fetch
	$(BIN)/vaxvault dev

test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check api backup tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

schema: $(STAMP)
	$(BIN)/vaxvault schema export --output schema.graphql

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
