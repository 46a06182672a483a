# OpenGov-Food. `make help` lists the targets; `make run` and `make test` install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet \
	--custom-compile-command "make lock"
NODE_TOOLS := tools/asyncapi
NODE_STAMP := $(NODE_TOOLS)/node_modules/.package-lock.json

.PHONY: help install lock services run test test-fast soak lint typecheck clean docs bench cluster cluster-stop test-cluster

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(DEV_LOCK)
	scripts/apt-deps.sh
	@# A venv that python3 -m venv left without pip (no python3-venv then), or whose python is gone.
	@if [ -e $(VENV) ] && ! $(PY) -m pip --version >/dev/null 2>&1; then \
		echo "make: $(VENV) is half-made (no working python or pip): rebuilding it"; rm -rf $(VENV); fi
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r $(DEV_LOCK)
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

$(NODE_STAMP): $(NODE_TOOLS)/package.json $(NODE_TOOLS)/package-lock.json
	scripts/apt-deps.sh
	npm ci --prefix $(NODE_TOOLS) --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)  ## Create the virtualenv and install the project with its dev tools, as pinned in requirements-dev.lock (and the AsyncAPI parser, npm ci)

lock: install  ## Pin pyproject.toml's dependencies (with hashes) in requirements.lock and requirements-dev.lock
	$(COMPILE) -o $(LOCK)
	$(COMPILE) --extra dev -c $(LOCK) -o $(DEV_LOCK)

services:  ## Install PostgreSQL and RabbitMQ if missing, start them and the streaming replica (port 5433) if down
	scripts/apt-deps.sh
	scripts/services.sh

run: install services  ## Apply migrations, then run gateway (http://127.0.0.1:8000) and worker
	scripts/run.sh

test: install services  ## Run the whole test suite against the real services
	$(PY) -m pytest

cluster: services  ## Start (idempotently) a local 3-node RabbitMQ cluster (AMQP 5701-5703) and a second replica (5434)
	scripts/cluster.sh start

cluster-stop:  ## Stop the local RabbitMQ cluster and drop the second replica (make cluster brings them back)
	scripts/cluster.sh stop

test-cluster: install cluster  ## The failover tests on the local cluster (tests/cluster), then stop it
	status=0; TEST_CLUSTER=1 $(PY) -m pytest -s tests/cluster || status=$$?; \
	scripts/cluster.sh stop; exit $$status

soak: install services  ## Longer than make test: 1,000 generated worker histories per database (HISTORIES), the history checker for 600 s (HISTORY_SECONDS), the example follower's replay of 30,000 events killed 5 times (REPLAY_EVENTS, REPLAY_KILLS)
	seed=$${HISTORY_SEED:-$$RANDOM}; echo "generated histories from seed $$seed (HISTORY_SEED=$$seed to repeat)"; \
	HISTORIES=$${HISTORIES:-1000} HISTORY_SEED=$$seed HISTORY_SECONDS=$${HISTORY_SECONDS:-600} HISTORY_FAULTS=kill,primary,broker \
	REPLAY_EVENTS=$${REPLAY_EVENTS:-30000} REPLAY_KILLS=$${REPLAY_KILLS:-5} \
	$(PY) -m pytest -s tests/worker/test_histories.py tests/faults/test_history_checker.py tests/ops/test_example_replay.py

lint: install  ## ruff, mypy and the import layers (lint-imports)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared gateway worker
	$(VENV)/bin/lint-imports

docs: install  ## Regenerate docs/asyncapi.yaml and docs/openapi.json from the code
	$(PY) -m shared.contracts.asyncapi docs/asyncapi.yaml
	$(PY) -m gateway.app docs

bench: install services  ## Load the system, print one table beside raw baselines (BENCH_ARGS=--quick: ~1 min)
	$(PY) -m bench.run $(BENCH_ARGS)

clean:  ## Remove the virtualenv, the SQLite file and test logs
	rm -rf $(VENV) opengovfood.db* .test-logs .pytest_cache
