# The README's two commands: `make demo` and `make test`. Both work on a fresh Debian
# machine: they install redis-server and mosquitto with apt-get when missing and the
# Python package with its dependencies into .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test demo lint typecheck unit system-deps browser-deps venv bench clean

test: system-deps browser-deps venv lint typecheck unit

demo: system-deps venv
	$(BIN)/callgate demo

system-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	{ command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } || missing="$$missing mosquitto"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Debian's Chromium for the wallboard's browser test (Playwright drives it; it never
# downloads a browser of its own).
browser-deps:
	@{ [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; } || { \
	  echo "installing: chromium"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed")'
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q -p no:cacheprovider

bench: system-deps venv
	$(BIN)/python bench/agi_roundtrip.py
	$(BIN)/python bench/authorize.py
	$(BIN)/python bench/prepaid.py
	$(BIN)/python bench/dialer.py

clean:
	rm -rf $(VENV) state .pytest_cache .mypy_cache .ruff_cache
