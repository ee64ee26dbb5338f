# Two commands do everything: `make run` (set up + monthly retraining flow) and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME := $(CURDIR)/.defectqa/prefect
export TOKENIZERS_PARALLELISM := false

MONTH ?= 2026-01

.PHONY: setup run test test-fast lint bench-serve replay ui-mlflow ui-prefect clean repro stack-up stack-down stack-status

# What to install: pyproject.toml (ranges, extras); which versions: requirements/constraints.txt.
CONSTRAINTS := requirements/constraints.txt
$(STAMP): $(CONSTRAINTS) pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	# torch + torchvision first, in their own call, then pinned (same file) for every later call.
	$(PIP) install -q -c $(CONSTRAINTS) torch torchvision
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup  ## ingest the bundled month, then run the monthly retraining flow
	$(VENV)/bin/defectqa retrain --bundled-month $(MONTH)

replay: setup  ## make replay MONTH=2026-02: the next bundled month
	$(VENV)/bin/defectqa retrain --bundled-month $(MONTH)

lint: setup  ## ruff (config in pyproject.toml)
	$(VENV)/bin/ruff check .

test: setup lint
	bash infra/install-browser.sh  # Debian's chromium for the browser test (no browser download)
	bash infra/install-stack.sh    # Debian's PostgreSQL for the server-stack tests (tests/stack)
	$(PY) -m pytest -q

# Unit tests only: no tiny-model training, flow, browser or server stack (markers: pyproject.toml).
FAST := not slow and not model and not flow and not browser and not stack
test-fast: setup
	$(PY) -m pytest -q -m "$(FAST)"

ui-mlflow: setup
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///.defectqa/mlflow.db --host 127.0.0.1 --port 5000

ui-prefect: setup
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port 4200

repro: setup  ## the same stages through DVC (after a month was ingested and validated)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/dvc repro

REQUESTS ?= 1000
MODEL ?=
bench-serve: setup  ## load-test the inspector service on the champion (REQUESTS per concurrency 1, 4, 8)
	$(PY) benchmarks/serve_load.py --requests $(REQUESTS) $(if $(MODEL),--model $(MODEL)) --out .defectqa/reports/bench-serve.md

# PostgreSQL + S3 (moto) + MLflow server + Prefect server + worker on 127.0.0.1; state in .defectqa/stack.
# STACK_ARGS="--base-port 16430" or "--state DIR" for another instance (see infra/README.md).
STACK_ARGS ?=
stack-up: setup  ## start the loopback server stack (idempotent), print its UIs and client env
	bash infra/install-stack.sh
	$(PY) infra/stack.py up $(STACK_ARGS)

stack-status:  ## which services of the stack are up
	$(PY) infra/stack.py status $(STACK_ARGS)

stack-down:  ## stop the stack (its data stays in .defectqa/stack, except moto's S3, which is in memory)
	$(PY) infra/stack.py down $(STACK_ARGS)

clean:
	rm -rf .defectqa
