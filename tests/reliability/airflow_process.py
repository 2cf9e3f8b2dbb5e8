"""Run real Airflow commands in a subprocess against the emulated clouds, with a private AIRFLOW_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
_STRIPPED = ("AIRFLOW", "AWS_", "GOOGLE_", "CLOUDSDK_", "STORAGE_EMULATOR_HOST", "GCP_WIF_", "_AIRFLOW")


def environment(emulator: Any, home: Path, dags: Path, **extra: str) -> dict[str, str]:
    """Nothing of the caller's Airflow/AWS/Google settings; the emulator's connections; SQLite in ``home``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_STRIPPED)}
    env.pop("VIRTUAL_ENV", None)
    env.update(emulator.info["env"])
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def airflow(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def everything_written(result: subprocess.CompletedProcess[str], home: Path) -> str:
    """stdout, stderr and every file under ``AIRFLOW_HOME/logs``."""
    parts = [result.stdout, result.stderr]
    logs = home / "logs"
    if logs.exists():
        parts += [path.read_text(errors="replace") for path in sorted(logs.rglob("*")) if path.is_file()]
    return "\n".join(parts)
