# zorg.live: `make demo` runs the demo site, `make test` runs every test.
# Both set up everything they need on a fresh machine (virtualenv, Python
# packages, Debian's chromium and redis-server).

PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
PORT ?= 8080
APT_PACKAGES = chromium redis-server nginx
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all demo test install system-deps bench bench-deps bench-quick clean

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/python setup.py
	@echo "== installing zorg.live and its test tools into $(VENV)"
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Debian packages the tests use (nginx: the README's proxy example is run):
# installed only when missing.
system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "== installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

test: install system-deps
	$(BIN)/pytest

demo: install
	$(BIN)/python -m zorg.live.demo --port $(PORT)

BENCH_APT = nginx libnginx-mod-nchan redis-server

bench-deps: install
	$(BIN)/pip install -q -r benchmarks/requirements.txt
	@$(MAKE) --no-print-directory system-deps APT_PACKAGES="$(BENCH_APT)"

bench: bench-deps
	$(BIN)/python benchmarks/run.py

bench-quick: bench-deps
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) src/*.egg-info .pytest_cache
