# Two commands: `make demo` and `make test`. Nothing is needed but Python >= 3.11, git and make:
# uv (pinned) is installed into .tools/ by pip, and installs .venv exactly as uv.lock says.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test check lint imports install reinstall lock dev clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --locked: install what uv.lock says, and fail when the lock is out of step with pyproject.toml
# (--frozen would install the stale lock silently); `make lock` is the one way to change it.
$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --python $(PYTHON) --quiet
	touch $(STAMP)

install: $(STAMP)

# A fresh .venv and .tools from the lock; the embedded database's data is left alone.
reinstall:
	rm -rf $(VENV) $(TOOLS)
	$(MAKE) install

# The demo's own store (schema embed_assets_demo), never the one of your data; see the README.
demo: $(STAMP)
	$(BIN)/embed-assets demo

# The install check runs first: a drifted Dagster family stops everything with one message.
test: check
	$(BIN)/python -m pytest -q

check: install lint imports

lint: $(STAMP)
	$(BIN)/python -m embed_assets_tests.install_check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

# Refresh uv.lock to the newest versions pyproject.toml allows; run `make test` after, then commit it.
lock: $(UV)
	$(UV) lock --upgrade
	rm -f $(STAMP)

dev: $(STAMP)
	$(BIN)/dagster dev

# Also deletes the embedded database's data (.embed_assets): everything loaded and embedded.
clean:
	rm -rf $(VENV) $(TOOLS) .embed_assets .pytest_cache
