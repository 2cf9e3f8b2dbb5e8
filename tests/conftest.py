"""Shared test setup: the emulated clouds' fixtures, and a private AIRFLOW_HOME for tests that import Airflow."""

import os
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="gcp-wif-tests-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

pytest_plugins = ["airflow_provider_gcp_wif.testing.pytest_plugin", "tests.fixtures"]
