"""The plugin logs one INFO line at load naming the provider, Google provider and google-auth versions: on MWAA a
failed pip install is otherwise silent, and this line (or its absence) is what the component logs show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata

SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s %(message)s")
import airflow_provider_gcp_wif.plugin
import airflow_provider_gcp_wif.plugin  # a second import (Airflow may load the module twice) logs nothing more
"""


def test_importing_the_plugin_logs_one_info_line_with_the_installed_versions(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if "gcp_wif plugin loaded" in line]
    expected = ", ".join(f"{name} {metadata.version(name)}" for name in
                         ("airflow-provider-gcp-wif", "apache-airflow-providers-google", "google-auth"))
    # Airflow 3 formats stdlib logging through structlog ("[info     ] ..."); Airflow 2.11 through our basicConfig
    # ("INFO airflow_provider_gcp_wif.plugin ..."); Airflow 2.9/2.10 through its own colored format ("{plugin.py:34}
    # INFO - ..."). Each says the level: INFO.
    assert len(lines) == 1, result.stdout[-2000:]
    assert f"gcp_wif plugin loaded: {expected}" in lines[0]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", lines[0])
    assert ("INFO airflow_provider_gcp_wif.plugin" in plain or "[info" in plain
            or re.search(r"\{plugin\.py:\d+\} INFO - ", plain)), lines[0]
