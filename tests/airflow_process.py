"""Helpers for tests that run real Airflow (CLI commands and components) in subprocesses (tests/airflow,
tests/reliability, tests/ui, tests/cli).

Every Airflow process gets a private ``AIRFLOW_HOME`` (SQLite), the emulated clouds' environment and nothing of
the caller's ``AIRFLOW_*`` / ``AWS_*`` / Google variables, and runs with this interpreter (``python -m airflow``),
so the same tests run in the main venv and in each matrix venv.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import wait_until

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


def everything_written(result: subprocess.CompletedProcess[str], home: Path) -> str:
    """stdout, stderr and every file under ``AIRFLOW_HOME/logs``."""
    parts = [result.stdout, result.stderr]
    logs = home / "logs"
    if logs.exists():
        parts += [path.read_text(errors="replace") for path in sorted(logs.rglob("*")) if path.is_file()]
    return "\n".join(parts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def components_environment(emulator: Any, home: Path, dags: Path, api_port: int, **extra: str) -> dict[str, str]:
    """:func:`airflow_environment` for real components on SQLite: Airflow 3's LocalExecutor (2.x refuses any other
    than SequentialExecutor on SQLite), DAGs paused at creation, the execution API on ``api_port``, fresh JWT and
    secret keys, free log-server ports, and short heartbeats and parse intervals."""
    return airflow_environment(
        emulator, home,
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__EXECUTOR="LocalExecutor" if AIRFLOW_3 else "SequentialExecutor",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{api_port}/execution/",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
        AIRFLOW__WEBSERVER__SECRET_KEY=secrets.token_hex(16),
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
        AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="5",
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="5",
        **extra,
    )


def start_components(components: list[Component], api_port: int, environment: Mapping[str, str],
                     log_dir: Path) -> None:
    """Airflow 3's api-server (on ``api_port``) and dag-processor, then the scheduler (2.x parses DAGs itself)."""
    if AIRFLOW_3:
        components.append(Component("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                                   "--workers", "1"], environment, log_dir))
        components.append(Component("dag-processor", ["dag-processor"], environment, log_dir))
    components.append(Component("scheduler", ["scheduler"], environment, log_dir))


def query(home: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows of ``home``'s SQLite database, read-only; none while it is locked or the table is not there yet."""
    database = home / "airflow.db"
    if not database.exists():
        return []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as connection:
        try:
            return connection.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # locked, or the table is not there yet
            return []


def wait_for(condition: Callable[[], Any], timeout: float, components: list[Component], what: str,
             interval: float = 1.0) -> Any:
    """``condition()``'s first truthy result; fails with every component's log when one exits or time runs out."""
    seen: dict[str, Any] = {}

    def ready_or_dead() -> Any:
        seen["result"] = condition()
        seen["dead"] = [] if seen["result"] else [c for c in components if not c.alive()]
        return seen["result"] or seen["dead"]

    wait_until(ready_or_dead, timeout, poll=interval)
    if seen["result"]:
        return seen["result"]
    if seen["dead"]:
        pytest.fail(f"{', '.join(c.name for c in seen['dead'])} exited while waiting for {what}\n"
                    f"{dump_logs(components)}")
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{dump_logs(components)}")


def wait_for_api_server(api_port: int, components: list[Component], timeout: float = 120) -> None:
    """On Airflow 3, until the api-server answers its health check (2.x has none to wait for)."""
    if not AIRFLOW_3:
        return

    def api_ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    wait_for(api_ready, timeout, components, "the API server")


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


def stop_components(components: list[Component], timeout: float = 10) -> None:
    """Stop them all at once: SIGTERM every process group, one shared grace period, then SIGKILL what is left (one
    after the other, each component's graceful shutdown cost up to 20 s of every real-process test's teardown)."""
    for component in components:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.process.pid, signal.SIGTERM)
    wait_until(lambda: not any(c.process.poll() is None or _group_alive(c.process.pid) for c in components), timeout,
               poll=0.2)
    for component in reversed(components):
        component.stop(timeout=0)


def stop_process_group(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM the whole process group (the component and its children), then SIGKILL what is left."""
    pgid = process.pid
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        if wait_until(lambda: process.poll() is not None and not _group_alive(pgid), wait, poll=0.2):
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
