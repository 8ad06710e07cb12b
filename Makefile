# chatterd: `make run` serves on 127.0.0.1:8000, `make test` runs the whole test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
# Loopback unless told otherwise, e.g. CHATTERD_BIND=0.0.0.0:8000 make dev (the server reads the same variable).
BIND    := $(or $(CHATTERD_BIND),127.0.0.1:$(PORT))
VAR_DIR := $(or $(CHATTERD_VAR_DIR),var)
# One pid file per address, so that `make stop` finds every server started from this checkout.
PIDFILE := $(VAR_DIR)/run/$(subst :,_,$(BIND)).pid

.PHONY: run dev dev-tools stop reset-db test test-slow test-topology lint bench soak fake-google clean browser topology

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "chatterd needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
	@echo "make: creating the virtualenv $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	@echo "make: installing requirements.txt into $(VENV) (a minute or so the first time)"
	@$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	@echo "make: installing requirements-dev.txt (the runtime set, the test tools and httpie) into $(VENV)"
	@$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $(VENV)/.runtime $@

run: $(VENV)/.runtime
	@mkdir -p $(VAR_DIR)/run
	CHATTERD_BIND=$(BIND) $(BIN)/gunicorn web:create_app -c gunicorn.conf.py --pid $(PIDFILE)

# The same server with one worker, restarted whenever a Python file of the app changes; a reload waits at most
# 3 s for requests in flight (a browser's), not production's 30.
dev: $(VENV)/.dev
	@mkdir -p $(VAR_DIR)/run
	CHATTERD_BIND=$(BIND) $(BIN)/gunicorn web:create_app -c gunicorn.conf.py --pid $(PIDFILE) --workers 1 --reload \
		--graceful-timeout 3

# The test and development tools (httpie among them) in the virtualenv, without running anything.
dev-tools: $(VENV)/.dev

# Stops every server `make run` or `make dev` started from this checkout, then the embedded Postgres of var/.
stop: | $(BIN)/python
	@$(BIN)/python -m manage stop

# The same, then deletes the embedded Postgres' data (every user, session and chatt); the next start is empty.
reset-db: | $(BIN)/python
	@$(BIN)/python -m manage reset-db

test: $(VENV)/.dev browser topology
	$(BIN)/python -m pytest

# The browser test needs /usr/bin/chromium: install it when we can (root with apt-get); if that fails, it skips.
browser:
	-@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium for the browser test"; \
		{ timeout 600 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq chromium; } \
			>/dev/null 2>&1 || echo "could not install chromium; the browser test will be skipped"; \
	fi

# The PgBouncer and HAProxy tests need Debian's pgbouncer and haproxy: installed like chromium, else they skip.
topology:
	-@if ! { command -v pgbouncer || [ -x /usr/sbin/pgbouncer ]; } >/dev/null 2>&1 \
		|| ! { command -v haproxy || [ -x /usr/sbin/haproxy ]; } >/dev/null 2>&1; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "installing pgbouncer and haproxy for the topology tests"; \
			{ timeout 600 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq pgbouncer haproxy; } \
				>/dev/null 2>&1 || echo "could not install pgbouncer and haproxy; the topology tests will be skipped"; \
		fi; \
	fi

test-slow: $(VENV)/.dev topology
	$(BIN)/python -m pytest -m slow

# Three servers behind HAProxy, Postgres behind PgBouncer: the slow topology test alone (about two minutes).
test-topology: $(VENV)/.dev topology
	$(BIN)/python -m pytest -m slow -s tests/test_topology.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

bench: $(VENV)/.dev
	$(BIN)/python -m bench.run $(ARGS)

soak: $(VENV)/.dev
	$(BIN)/python -m bench.soak $(ARGS)

fake-google: $(VENV)/.dev
	$(BIN)/python -m tools.fake_google $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
