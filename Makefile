# Clearhouse developer entry points. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup run test test-fast lint typecheck format protos protos-check buf-lint bench demo clean

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) scripts/link_paths.py
	@touch $(STAMP)

$(BUF): package.json package-lock.json
	# `npm install` (not `npm ci`): npm 11 drops the other platforms' optional buf binaries from the
	# lock file and then refuses `ci`; with the lock present, install resolves the same pinned version.
	npm install --silent --no-audit --no-fund
	@touch $(BUF)

setup: $(STAMP) $(BUF) ## Install Python dependencies (.venv) and buf (node_modules)

run: setup ## Start every process on the embedded default (SQLite, in-process fallbacks)
	$(PY) -m chassis.runner

test: setup ## The whole suite (PostgreSQL and Redis tests run when reachable; CI requires them)
	$(PY) -m pytest -q -n 2 --dist loadgroup

test-fast: setup ## Unit tests only
	$(PY) -m pytest -q tests/unit

lint: setup ## ruff check, ruff format --check, mypy, buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy chassis gateway payments_svc vault_svc ledger_svc provider_sim tools
	$(BUF) lint

typecheck: setup ## mypy only
	$(VENV)/bin/mypy chassis gateway payments_svc vault_svc ledger_svc provider_sim tools

format: setup ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

protos: setup ## Regenerate _pb2, _pb2_grpc and .pyi from protos/
	$(PY) scripts/gen_protos.py

protos-check: setup ## Fail if the committed bindings differ from a fresh generation
	$(PY) -m pytest -q tests/unit/test_protos.py

buf-lint: setup ## buf lint
	$(BUF) lint

bench: setup ## Every benchmark; writes var/bench/report.md
	$(PY) -m tests.bench

demo: setup ## With `make run` up: a seeded day of activity through the REST API (SEED=7, GATEWAY_URL=...)
	$(PY) -m tools.demo $(if $(SEED),--seed $(SEED)) $(if $(GATEWAY_URL),--url $(GATEWAY_URL))

clean: ## Remove var/ (databases, certificates, keys, traces)
	rm -rf var
