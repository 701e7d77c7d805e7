# Two commands for a new user: `make demo` and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PYTHONPATH := $(CURDIR)/include
# OpenMP busy-waits when cores are shared (pytest + Airflow workers): one thread per process.
export OMP_NUM_THREADS ?= 1

.PHONY: venv demo test lint airflow bench clean browser-deps

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) scripts/demo.py

# Debian's chromium + chromium-driver for the real-browser UI test (installed only as root).
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	  else echo "note: chromium/chromium-driver missing: the browser test will be skipped"; fi; \
	fi

test: venv browser-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

lint: venv
	$(VENV)/bin/ruff check .

airflow: venv
	$(PY) scripts/airflow_embedded.py serve

bench: venv
	$(PY) benchmarks/run_all.py

clean:
	rm -rf .airflow var demo-summary.json test-output .pytest_cache .ruff_cache
