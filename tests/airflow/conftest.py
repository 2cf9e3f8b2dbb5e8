"""tests/airflow: wif_env and components come from tests/fixtures.py; plugin_loaded is for the modules that import
Airflow's Google hooks in this process."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def plugin_loaded():
    """What every Airflow process does at start-up: import the `airflow.plugins` entry point's module."""
    from importlib.metadata import entry_points

    (plugin,) = [ep for ep in entry_points(group="airflow.plugins") if ep.name == "gcp_wif"]
    plugin.load()
