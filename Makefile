# Two commands for a new user: `make demo` and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PYTHONPATH := $(CURDIR)/include
# OpenMP busy-waits when cores are shared (pytest + Airflow workers): one thread per process.
export OMP_NUM_THREADS ?= 1

.PHONY: venv venv-dev demo test test-fast test-pythons test-mlflow docs lint airflow bench clean

# The core's unit tests (no Airflow, no services), also run on the other Python versions that
# Airflow 3 supports, where installed (python3.X on PATH or ~/.pyenv/versions/3.X*).
CORE_TESTS := $(addprefix tests/test_,backtest.py config.py data.py drift_concept.py \
	drift_decision.py drift_missing_share.py drift_policy.py drift_quality.py drift_report.py \
	drift_stattests.py labels.py lifecycle.py metrics.py performance_estimation.py quality.py \
	multiclass.py real_data.py registry.py simulate.py split_preprocess.py)
OTHER_PYTHONS ?= 3.12 3.13

# The runtime lock (what `make demo` and `make airflow` need) ...
$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	@touch $@

# ... and the test tools on top of it (ruff, pytest, hypothesis, moto, selenium).
$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed

venv-dev: $(VENV)/.installed-dev

demo: venv
	$(PY) scripts/demo.py

# The whole suite (what CI runs). The real-browser UI test needs Debian's chromium and
# chromium-driver (.ci/run installs them); elsewhere it is skipped, saying so.
test: venv-dev
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory docs
	$(VENV)/bin/pytest -q
	$(MAKE) --no-print-directory test-pythons
	$(MAKE) --no-print-directory test-mlflow

# Day-to-day: lint + the unit tests (no embedded Airflow run, cluster, browser, S3 server or
# end-to-end training of several models: pytest -m "not slow and not integration").
test-fast: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not slow and not integration"

# .venv-3.X: the core's locked dependencies only (scripts/core_requirements.py), no Airflow.
test-pythons: venv-dev
	@for v in $(OTHER_PYTHONS); do \
	  py=""; \
	  for c in $$(ls -d $$HOME/.pyenv/versions/$$v*/bin/python 2>/dev/null) $$(command -v python$$v); do \
	    if $$c -c 'import sys; assert sys.version_info[:2] == tuple(map(int, "'$$v'".split(".")))' 2>/dev/null; then py=$$c; break; fi; \
	  done; \
	  if [ -z "$$py" ]; then echo "test-pythons: Python $$v is not installed here: skipped"; continue; fi; \
	  echo "test-pythons: core unit tests on $$($$py --version) ($$py)"; \
	  test -x $(VENV)-$$v/bin/python || $$py -m venv $(VENV)-$$v || exit 1; \
	  $(PY) scripts/core_requirements.py > $(VENV)-$$v/core-requirements.txt || exit 1; \
	  $(VENV)-$$v/bin/pip install --quiet --disable-pip-version-check \
	    -r $(VENV)-$$v/core-requirements.txt || exit 1; \
	  $(VENV)-$$v/bin/python -m pytest -q -m "not slow" -p no:cacheprovider $(CORE_TESTS) || exit 1; \
	done

# The mlflow extra (tracking.mlflow) against a real MLflow: its client in .venv-mlflow (the core
# lock + requirements-mlflow.txt, no Airflow), a real `mlflow server` from .venv-mlflow-server
# (the full mlflow package; its pyarrow<26 bound conflicts with the core lock).
test-mlflow: venv-dev
	@test -x $(VENV)-mlflow/bin/python || $(PYTHON) -m venv $(VENV)-mlflow
	$(PY) scripts/core_requirements.py > $(VENV)-mlflow/core-requirements.txt
	$(VENV)-mlflow/bin/pip install --quiet --disable-pip-version-check \
	  -r $(VENV)-mlflow/core-requirements.txt -r requirements-mlflow.txt
	@test -x $(VENV)-mlflow-server/bin/python || $(PYTHON) -m venv $(VENV)-mlflow-server
	$(VENV)-mlflow-server/bin/pip install --quiet --disable-pip-version-check \
	  -r requirements-mlflow-server.txt
	ML_LIFECYCLE_MLFLOW_SERVER=$(CURDIR)/$(VENV)-mlflow-server/bin/mlflow \
	  $(VENV)-mlflow/bin/python -m pytest -q -p no:cacheprovider tests/test_mlflow_export.py

# The documentation site (mkdocs.yml) in its own venv from the locked requirements-docs.txt:
# generated pages must be current (scripts/gen_docs.py --check), and --strict fails the build on
# a broken link, a missing snippet or a docstring the API reference cannot read.
docs: venv
	@test -x $(VENV)-docs/bin/python || $(PYTHON) -m venv $(VENV)-docs
	$(VENV)-docs/bin/pip install --quiet --disable-pip-version-check -r requirements-docs.txt
	$(PY) scripts/gen_docs.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)-docs/bin/mkdocs build --strict --quiet --site-dir site

lint: venv-dev
	$(VENV)/bin/ruff check .

airflow: venv
	$(PY) scripts/airflow_embedded.py serve

bench: venv
	$(PY) benchmarks/run_all.py

clean:
	rm -rf .airflow var demo-summary.json test-output site .pytest_cache .ruff_cache
