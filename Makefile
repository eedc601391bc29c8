# OpenCPA: `make run` (demo network: web, worker, beat) and `make test` (lint + tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/opencpa
export REDIS_URL ?= redis://127.0.0.1:6379/0
export PORT

.PHONY: install services db migrate seed run serve worker bench bench-postbacks test lint format clean

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

services:
	@scripts/ensure_services.sh

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

test: install services lint
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
