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

.PHONY: setup venv system test serve bench proto lint clean dataset noise evaluate calibrate

setup: venv system

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml client/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e . -e ./client
	@touch $(STAMP)

# Debian packages the tests use: a real redis-server, and docker-compose to validate docker/compose.yaml.
SYSTEM_PACKAGES := redis-server:redis-server docker-compose:docker-compose
system:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
		command -v "$${pair#*:}" >/dev/null 2>&1 || missing="$$missing $${pair%%:*}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v redis-server >/dev/null 2>&1

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

serve: setup
	$(BIN)/perfseer serve --host $(HOST) --port $(PORT)

# A predictor for this machine in ten minutes (measures on CPU 1, one thread; written to predictors/, which
# `make serve` then serves beside the shipped one).  CALIBRATE_ARGS="--threads 0" for the runtime's default.
CALIBRATE_ARGS ?=
calibrate: setup
	$(BIN)/perfseer calibrate --budget-minutes 10 --cpus 1 $(CALIBRATE_ARGS)

bench: setup
	$(BIN)/perfseer bench graph
	$(BIN)/perfseer bench trees
	$(BIN)/perfseer bench serve
	$(BIN)/perfseer bench latbench --max-test 3000   # all 14,384 test cells: perfseer bench latbench
	$(BIN)/perfseer bench zoo

proto: venv
	$(BIN)/python client/perfseer_client/codegen.py

# Extend the shipped CPU dataset (resumes where it stopped; pin to CPU 1, one thread). Run nothing heavy
# beside it: on a 2-vCPU VM, work on the other core slowed measurements by ~25 % (see data/README.md).
dataset: setup
	PERFSEER_ONNX_CACHE=.cache/onnx $(BIN)/perfseer dataset build --n 6000 --seed 0 --cpus 1 --prefetch-cpus 0 --time-cap 0.5

noise: setup
	$(BIN)/perfseer dataset build --remeasure 100 --cpus 1 --time-cap 0.5
	$(BIN)/perfseer dataset noise --out data/noise_floor.json

# The evaluation in bench/results/evaluation/ and the shipped predictor (predictors/cpu, from its random
# split): the random split and leave-one-family-out side by side, each pinned to its own core.
EVAL_MINUTES ?= 4
LOFO_MINUTES ?= 3
EVAL_METHODS := seernet_multi seernet seernet_multi_pooled loglinear nnmeter_kernel_gbt brpnas_gcn dippm_sage
LOFO_METHODS := seernet_multi loglinear nnmeter_kernel_gbt brpnas_gcn dippm_sage
EVAL_OUT := bench/results/evaluation
EVAL_RECORD := make evaluate EVAL_MINUTES=$(EVAL_MINUTES) LOFO_MINUTES=$(LOFO_MINUTES): \
	perfseer evaluate --splits random --max-minutes $(EVAL_MINUTES) --epochs 300 --save-predictor predictors/cpu \
	--multi-ensemble 2 --guard bench/results/zoo_measured.json --methods $(EVAL_METHODS) (CPU 0) beside perfseer evaluate --splits lofo \
	--max-minutes $(LOFO_MINUTES) --epochs 300 --methods $(LOFO_METHODS) (CPU 1)
evaluate: setup
	mkdir -p $(EVAL_OUT)
	taskset -c 0 $(BIN)/perfseer evaluate --splits random --max-minutes $(EVAL_MINUTES) --epochs 300 \
		--save-predictor predictors/cpu --multi-ensemble 2 --guard bench/results/zoo_measured.json --methods $(EVAL_METHODS) \
		--command-line "$(EVAL_RECORD)" > $(EVAL_OUT)/random.log 2>&1 & random=$$!; \
	taskset -c 1 $(BIN)/perfseer evaluate --splits lofo --max-minutes $(LOFO_MINUTES) --epochs 300 \
		--methods $(LOFO_METHODS) --command-line "$(EVAL_RECORD)" > $(EVAL_OUT)/lofo.log 2>&1; lofo=$$?; \
	wait $$random && [ $$lofo = 0 ]
	$(BIN)/perfseer evaluate --report-only --command-line "$(EVAL_RECORD)"

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
