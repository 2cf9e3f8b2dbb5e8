# The README's two commands: `make demo` and `make test`. Both build their own virtual environment from the
# package registries (uv, installed into the venv, makes that take seconds instead of minutes).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
PYTEST_ARGS ?=
# Two MWAA environments' tests at once: their real-process tests wait on processes much of the time, and CI's
# budget (.ci/run under 60 minutes on 2 cores) needs it. `MATRIX_ARGS="--env mwaa-2.9.2"` runs one.
MATRIX_ARGS ?= --jobs 2

.PHONY: demo test test-suite test-matrix lint install clean mwaa

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --quiet
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip install --quiet -p $(PY) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) scripts/demo.py

# Everything in the main venv (latest releases) and, at the same time, tests/airflow under each MWAA image's
# constraints: both spend much of their time waiting on real Airflow processes, and CI's budget (.ci/run under
# 60 minutes on 2 cores) needs the overlap. Each one's output is printed whole when it ends (--output-sync).
# Ends with the timing table of scripts/ci_timing.py (each selection's ten slowest tests, each matrix environment).
test: install
	@test -n "$$GCP_WIF_TIMING_KEEP" || $(PY) scripts/ci_timing.py reset
	@status=0; $(MAKE) --no-print-directory -j2 --output-sync=target test-suite test-matrix || status=$$?; \
	  $(PY) scripts/ci_timing.py report; exit $$status

# The whole suite in the main venv, in SUITE_WORKERS pytest-xdist workers (0: one process, as plain pytest).
SUITE_WORKERS ?= 3
test-suite: install
	$(PY) scripts/ci_timing.py run test-suite -- \
	  $(PY) -m pytest -n $(SUITE_WORKERS) --dist worksteal --junitxml=artifacts/timing/junit-main.xml $(PYTEST_ARGS)

# One venv per constraints/mwaa/airflow-<version>.txt (.venv-mwaa-<version>, on the image's Python, reused while up
# to date); the full selection on 2.9.2, 2.11.2, 3.0.6, the smoke one on 3.3.1, the in-process one on the others
# (scripts/matrix.py).
test-matrix: install
	$(PY) scripts/ci_timing.py run test-matrix -- $(PY) scripts/matrix.py $(MATRIX_ARGS)

# The example DAG on an MWAA-faithful stack (CeleryExecutor over SQS, PostgreSQL, ECS container credentials, no
# AWS key anywhere); MWAA_IMAGE picks the image (constraints/mwaa/airflow-<version>.txt). Last line: one JSON object.
MWAA_IMAGE ?= 3.3.1
mwaa: install
	MWAA_IMAGE=$(MWAA_IMAGE) $(PY) scripts/mwaa_stack.py

bench: install
	$(PY) scripts/bench.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .venv-mwaa-* .venv-mwaa-stack-* .pytest_cache .ruff_cache .mypy_cache artifacts
