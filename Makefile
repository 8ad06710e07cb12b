# chatterd: `make run` serves on 127.0.0.1:8000, `make test` runs the whole test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000

.PHONY: run dev test test-slow test-topology lint bench soak fake-google clean browser topology

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "chatterd needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

run: $(VENV)/.runtime
	CHATTERD_BIND=127.0.0.1:$(PORT) $(BIN)/gunicorn web:create_app -c gunicorn.conf.py

dev: $(VENV)/.dev
	$(BIN)/adev runserver web.py --app-factory create_app --port $(PORT)

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
