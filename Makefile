# zorg.live: `make demo` runs the demo site, `make test` runs every test.
# Both set up everything they need on a fresh machine (virtualenv, Python
# packages, Debian's chromium and redis-server).

PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
PORT ?= 8080
APT_PACKAGES = chromium redis-server nginx postgresql
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all demo test install system-deps bench bench-deps bench-quick clean \
	test-plone bench-issue11 soak bench-abuse bench-abuse-quick

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/python setup.py
	@echo "== installing zorg.live and its test tools into $(VENV)"
	$(BIN)/pip install -q -e '.[test,zope6,grok,zeo,relstorage]'
	touch $@

install: $(VENV)/.installed

# Debian packages the tests use (nginx: the README's proxy example is run;
# postgresql: RelStorage's database, a cluster that the tests make):
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

# issue 19: seeded fault schedules (clients, Redis and process faults) on
# two or three live processes, one ZEO database and one redis-server, each
# checked for the delivery and exactly-once promises, for SECONDS in all
# (`make test` runs two short ones). SEED: the first schedule's seed
# (default: from the clock); LENGTH: seconds per schedule.
SECONDS ?= 600
LENGTH ?= 20
soak: install system-deps
	$(BIN)/python -m zorg.live.tests.faults --seconds $(SECONDS) \
	  --length $(LENGTH) $(if $(SEED),--seed $(SEED)) \
	  $(if $(FAULTS),--faults $(FAULTS))

# The Plone 6 add-on's tests: heavier (Plone is some 200 packages), so not
# part of `make test`; Plone gets a virtualenv of its own.
PLONE_VENV ?= .venv-plone

$(PLONE_VENV)/.installed: setup.py
	$(PYTHON) -m venv $(PLONE_VENV)
	$(PLONE_VENV)/bin/pip install -q --upgrade pip setuptools wheel
	@echo "== installing zorg.live with Plone 6 into $(PLONE_VENV)"
	$(PLONE_VENV)/bin/pip install -q -e '.[test,plone]'
	touch $@

test-plone: $(PLONE_VENV)/.installed system-deps
	$(PLONE_VENV)/bin/pytest src/zorg/live/plone

# The Volto add-on (volto-zorg-live/) in Chromium, against a real Plone
# backend and a Volto 18 frontend built here with npm and nodejs 20
# (volto-zorg-live/frontend.sh). Not in CI: the first run installs Volto's
# build dependencies and builds it (7 minutes from a fresh clone with a
# warm npm cache on 2 cores; more with a cold one).
.PHONY: test-volto
test-volto: $(PLONE_VENV)/.installed system-deps
	@$(MAKE) --no-print-directory system-deps APT_PACKAGES="nodejs"
	@command -v npm >/dev/null || $(MAKE) --no-print-directory system-deps APT_PACKAGES="npm"
	$(PLONE_VENV)/bin/pytest volto-zorg-live/tests

# The wheel and the sdist, into dist/ (install one with
# `pip install 'dist/zorg.live-<version>-py3-none-any.whl[plone]'`).
.PHONY: dist
dist: install
	$(BIN)/pip install -q build
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

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

# issue 11: Redis, long-poll and slow Redis beside the peers at 10,000 pages;
# writes results/$(BENCH_NAME).md/.json and the table against the before run
BENCH_NAME ?= after-issue11
BENCH_ISSUE11 = --systems zorg-live-sse,zorg-redis-sse,aiohttp-sse,nchan-sse,zorg-live-lp,nchan-lp --scenarios capacity,fanout,sustained,chat,slow-redis --sizes 10000
bench-issue11: bench-deps
	$(BIN)/python benchmarks/run.py $(BENCH_ISSUE11) --name $(BENCH_NAME)
	$(BIN)/python benchmarks/compare.py benchmarks/results/before-issue11.json benchmarks/results/$(BENCH_NAME).json --out benchmarks/results/$(BENCH_NAME)-vs-before.md

clean:
	rm -rf $(VENV) $(PLONE_VENV) src/*.egg-info .pytest_cache

# issue 13: WebSocket. zorg.live's shared connection (<app URL>/@@live)
# beside an aiohttp WebSocket broadcaster and nchan's websocket endpoint,
# in one run; writes benchmarks/results/$(BENCH_WS_NAME).md/.json.
# bench-ws-quick: small counts (a few minutes), results/issue13-ws-quick.*
.PHONY: bench-ws bench-ws-quick
BENCH_WS_NAME ?= issue13-ws
BENCH_WS = --systems zorg-live-ws,aiohttp-ws,nchan-ws --scenarios capacity,shared-pages,fanout,sustained,chat,tabs
bench-ws: bench-deps
	$(BIN)/python benchmarks/run.py $(BENCH_WS) --set capacity_sizes=5000,10000 --set capacity_tracemalloc=5000 --set shared_tracemalloc=500 --set fanout_sizes=10000 --name $(BENCH_WS_NAME)

bench-ws-quick: bench-deps
	$(BIN)/python benchmarks/run.py --quick $(BENCH_WS) --set capacity_sizes=1000 --set fanout_sizes=1000 --name issue13-ws-quick

# issue 22: the chat's normal traffic (1,000 pages, 10 senders) beside each
# flood of one attacker for 60 s, against the same run with no flood:
# results/issue22-abuse.md/.json; bench-abuse-quick: 10 s runs
BENCH_ABUSE = --systems zorg-live-ws --scenarios abuse
bench-abuse: bench-deps
	$(BIN)/python benchmarks/run.py $(BENCH_ABUSE) --name issue22-abuse

bench-abuse-quick: bench-deps
	$(BIN)/python benchmarks/run.py --quick $(BENCH_ABUSE) --set chat_senders=10 --name issue22-abuse-quick
