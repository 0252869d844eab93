# PerfSeer — `make serve` and `make test` work from a fresh clone on Debian with Python 3.11.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.perfseer-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST ?= 127.0.0.1
PORT ?= 50051
PYTEST_ARGS ?=

.PHONY: setup venv redis test serve bench proto lint clean dataset noise

setup: venv redis

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml client/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e . -e ./client
	@touch $(STAMP)

# Tests use a real Redis: install Debian's redis-server when it is missing.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@command -v redis-server >/dev/null 2>&1

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

serve: setup
	$(BIN)/perfseer serve --host $(HOST) --port $(PORT)

bench: setup
	$(BIN)/python -m bench.graph_build
	@if [ -f bench/serve.py ]; then $(BIN)/python -m bench.serve; fi

proto: venv
	$(BIN)/python client/perfseer_client/codegen.py

# Extend the shipped CPU dataset (resumes where it stopped; pin to CPU 1, one thread).
dataset: setup
	$(BIN)/perfseer dataset build --n 6000 --seed 0 --cpus 1 --time-cap 0.5

noise: setup
	$(BIN)/perfseer dataset build --remeasure 100 --cpus 1 --time-cap 0.5
	$(BIN)/perfseer dataset noise --out data/noise_floor.json

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
