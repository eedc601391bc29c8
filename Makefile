# OpenCPA: `make run` (demo network: web, worker, beat) and `make test` (lint + tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The venv's interpreter (PYTHON=... to choose): Debian's own python3.11 where it can make a venv,
# else python3.11, else python3. Debian builds it with PGO and LTO; pyenv's default build has neither
# and costs 11% more web CPU a postback (in-process A/B, 3 pairs of 2,500 postbacks).
PYTHON ?= $(firstword $(shell /usr/bin/python3.11 -c 'import ensurepip' 2>/dev/null && echo /usr/bin/python3.11) \
  $(shell command -v python3.11) python3)
PORT ?= 8000
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/opencpa
export REDIS_URL ?= redis://127.0.0.1:6379/0
export PORT

.PHONY: install services browser db migrate seed run serve worker bench bench-postbacks test lint format clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

services:
	@scripts/ensure_services.sh

# Debian's chromium, for the browser tests (tests/flows/test_browser_pixels.py).
browser:
	@scripts/ensure_chromium.sh

db: install services
	@$(PY) scripts/create_db.py

migrate: db
	DEBUG=1 $(PY) manage.py migrate --noinput

seed: migrate
	DEBUG=1 $(PY) manage.py seed_demo

run: seed
	DEBUG=1 TRACKING_BASE_URL=$${TRACKING_BASE_URL:-http://127.0.0.1:$(PORT)} scripts/run.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy apps config

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: install services browser lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Production processes, against an already migrated database (make migrate).
serve: install services
	scripts/serve.sh

worker: install services
	scripts/worker.sh

bench: install services
	$(PY) bench/click_bench.py

bench-postbacks: install services
	$(PY) bench/postback_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
