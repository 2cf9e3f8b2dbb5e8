"""Helpers for tests that run real Airflow (CLI commands and components) in subprocesses.

Every Airflow process gets a private ``AIRFLOW_HOME`` (SQLite), the emulated clouds' environment and nothing of
the caller's ``AIRFLOW_*`` / ``AWS_*`` / Google variables, and runs with this interpreter (``python -m airflow``),
so the same tests run in the main venv and in each matrix venv.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DAGS = REPO / "example_dags"
TEST_DAGS = REPO / "tests" / "airflow" / "dags"

_STRIPPED_PREFIXES = ("AIRFLOW", "AWS_", "GOOGLE_", "CLOUDSDK_", "STORAGE_EMULATOR_HOST", "GCP_WIF_", "_AIRFLOW")


def airflow_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(part) for part in version("apache-airflow").split(".")[:3] if part.isdigit())


AIRFLOW_VERSION = airflow_version()
AIRFLOW_3 = AIRFLOW_VERSION >= (3,)


def airflow_environment(emulator: Any, home: Path, **extra: str) -> dict[str, str]:
    """The environment of an Airflow process talking to ``emulator``, with its home (and SQLite DB) in ``home``."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(_STRIPPED_PREFIXES)}
    if emulator is not None:
        environment.update(emulator.info["env"])
    environment.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        # No real cloud credentials or metadata servers are looked at.
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    })
    # Executors that run `airflow tasks run ...` (2.11) find this venv's `airflow` first.
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")])
    environment.pop("VIRTUAL_ENV", None)
    environment.update(extra)
    home.mkdir(parents=True, exist_ok=True)
    return environment


def airflow(args: list[str], environment: Mapping[str, str], timeout: float = 240,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """``python -m airflow <args>`` with this interpreter; on failure the output is in the assertion message."""
    result = subprocess.run([sys.executable, "-m", "airflow", *args], env=dict(environment), capture_output=True,
                            text=True, timeout=timeout, check=False, cwd=environment["AIRFLOW_HOME"])
    if check:
        assert result.returncode == 0, (
            f"airflow {' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout[-20000:]}"
            f"\n--- stderr\n{result.stderr[-20000:]}"
        )
    return result


def migrate(environment: Mapping[str, str]) -> None:
    airflow(["db", "migrate"], environment)


class Component:
    """A long-running Airflow command in its own process group, output to a log file."""

    def __init__(self, name: str, args: list[str], environment: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "airflow", *args], env=dict(environment),
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                                        cwd=log_dir)  # files components drop in their cwd stay out of the repo

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        stop_process_group(self.process, timeout)
        self._log.close()


def stop_process_group(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM the whole process group (the component and its children), then SIGKILL what is left."""
    pgid = process.pid
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None and not _group_alive(pgid):
                break
            time.sleep(0.2)
        else:
            continue
        break
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture
def components() -> Iterator[list[Component]]:
    """A list to append started :class:`Component` s to; all are stopped (process groups killed) afterwards."""
    started: list[Component] = []
    try:
        yield started
    finally:
        for component in reversed(started):
            component.stop()


def dump_logs(components: list[Component], tail: int = 15000) -> str:
    return "\n".join(f"===== {c.name} (exit {c.process.poll()}) =====\n{c.log()[-tail:]}" for c in components)


def airflow_redact() -> Any:
    """The ``redact()`` of the secrets masker task logs go through: Airflow 3.1+ ``airflow.sdk.log``, 3.0 the task
    SDK's, 2.x the core one."""
    import importlib

    import pytest

    for module_name in ("airflow.sdk.log", "airflow.sdk.execution_time.secrets_masker",
                        "airflow.utils.log.secrets_masker"):
        try:
            redact = getattr(importlib.import_module(module_name), "redact", None)
        except ImportError:
            continue
        if redact is not None:
            return redact
    pytest.fail("no Airflow secrets masker with redact()")
