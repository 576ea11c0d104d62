# Two commands matter: `make demo` and `make test`. Both build .venv first: the demo with the
# core package alone (no extras, no apt-get, no browser), the tests with everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo

.PHONY: demo test lint typecheck unit bench clean setup screenshots docs

setup: $(STAMP)

# A venv from Python 3.11 or newer (python3-venv installed with apt-get if it is missing).
define NEW_VENV
@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	echo "python3-venv is missing: installing it with apt-get"; \
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq python3-venv; }
@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
endef

# uv installs the test environment in about 15 s where pip took 40 to 70 (measured on a fresh
# clone); pip installs uv itself, and stays the installer wherever uv has no wheel. Bytecode is
# compiled at install, as pip does: where PYTHONDONTWRITEBYTECODE is set, nothing else would.
define INSTALL
@$(BIN)/python -m pip install -q uv >/dev/null 2>&1 || true
@if [ -x $(BIN)/uv ]; then $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python $(1); \
	else $(BIN)/python -m pip install -q $(1); fi
endef

EXTRAS := dev,docs,gateway,dashboard,litellm,otel,openai-agents,langgraph,langchain,claude-agent-sdk,pydantic-ai,mcp,signing

# Everything the tests need: every extra, and chromium for the dashboard's browser tests.
$(STAMP): pyproject.toml
	$(NEW_VENV)
	@[ -x /usr/bin/chromium ] || { \
		echo "chromium is missing (the dashboard's browser tests drive it): installing it with apt-get"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }
	$(call INSTALL,-e '.[$(EXTRAS)]')
	@touch $(STAMP) $(DEMO_STAMP)

# The demo needs the core package only: no extras, no apt-get, no browser.
$(DEMO_STAMP): pyproject.toml
	$(NEW_VENV)
	$(call INSTALL,-e .)
	@touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/acp demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples docs/*.py docs/generators
	$(BIN)/ruff format --check src tests bench examples docs/*.py docs/generators

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -q -n 4 --maxschedchunk=1

bench: $(STAMP)
	$(BIN)/python -m bench

# The docs site, into site/; tests/test_docs_site.py builds it in make test too.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache site

screenshots: $(STAMP)
	$(BIN)/python docs/screenshots.py
