"""The connection-form tests' browser and servers: Debian's Chromium, screenshots in ``artifacts/ui/``, Airflow
servers as :class:`tests.airflow_process.Component` s started the same way for both UIs, the values a user types
into the form, and a hook run in a fresh process against a server's ``AIRFLOW_HOME``."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_process import REPO, Component, airflow_environment, free_port, migrate
from tests.fixtures import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = REPO / "artifacts" / "ui"
#: How long an Airflow server may take to answer (2 shared cores: the 2.11 webserver needs ~40 s).
SERVER_START_TIMEOUT = 180


class Server(Component):
    """An Airflow server (API server or webserver): a :class:`Component` in its own process group and working
    directory, output to a log file, that can be waited for until it answers."""

    def log(self, tail: int = 15000) -> str:
        return super().log()[-tail:]

    def wait_until_answering(self, url: str, timeout: float = SERVER_START_TIMEOUT) -> None:
        def answering_or_exited() -> str | None:
            if self.process.poll() is not None:
                return "exited"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return "answering"
            except (urllib.error.URLError, OSError):
                pass
            return None

        outcome = wait_until(answering_or_exited, timeout, poll=1)
        if outcome == "answering":
            return
        if outcome == "exited":
            pytest.fail(f"{self.name} exited {self.process.returncode} before answering:\n{self.log()}")
        pytest.fail(f"{self.name} did not answer {url} within {timeout:.0f}s:\n{self.log()}")


def ui_environment(emulator: Any, home: Path, **settings: str) -> dict[str, str]:
    """An Airflow server's environment for the form tests: the emulated clouds, the Test button enabled, the
    metadata database migrated, and no ``gcp_wif`` connection but the one the test saves in the UI."""
    environment = airflow_environment(emulator, home, AIRFLOW__CORE__TEST_CONNECTION="Enabled", **settings)
    environment.pop("AIRFLOW_CONN_GCP_WIF_DEFAULT")
    migrate(environment)
    return environment


def start_server(servers: list[Server], name: str, command: list[str], environment: Mapping[str, str],
                 workdir: Path, health_path: str) -> str:
    """``airflow <command> --port <a free port>`` on loopback as a :class:`Server` (stopped with ``servers``),
    waited for until ``health_path`` answers; its base URL."""
    port = free_port()
    server = Server(name, [*command, "--port", str(port)], environment, workdir)
    servers.append(server)
    base = f"http://127.0.0.1:{port}"
    server.wait_until_answering(f"{base}{health_path}")
    return base


def typed_values(info: Mapping[str, Any]) -> dict[str, str]:
    """What the tests type into the form: the emulated clouds' WIF provider, service account, project and
    endpoints (every other field keeps its default)."""
    return {
        "project_number": info["project_number"],
        "pool_id": info["pool_id"],
        "provider_id": info["provider_id"],
        "impersonation_chain": info["service_account"],
        "project": info["project_id"],
        "sts_endpoint": info["sts_endpoint"],
        "iam_endpoint": info["iam_endpoint"],
    }


def screenshot(page: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def hook_run_in(environment: Mapping[str, str], conn_id: str) -> dict[str, Any]:
    """``GcpWifHook(gcp_conn_id=conn_id)`` in a fresh process with ``environment`` (the server's AIRFLOW_HOME):
    the settings it read from the saved connection and its ``test_connection()``."""
    import json
    import textwrap

    code = textwrap.dedent(
        f"""
        import json
        from airflow_provider_gcp_wif.hooks.gcp_wif import GcpWifHook
        hook = GcpWifHook(gcp_conn_id={conn_id!r})
        s = hook._gcp_wif.settings
        ok, message = hook.test_connection()
        print(json.dumps({{"audience": s.audience, "aws_conn_id": s.aws_conn_id, "service_account": s.service_account,
                          "project": s.project, "sts_endpoint": s.sts_endpoint, "iam_endpoint": s.iam_endpoint,
                          "lifetime_seconds": s.lifetime_seconds, "num_retries": s.num_retries,
                          "ok": ok, "message": message}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], env=dict(environment), capture_output=True, text=True,
                            timeout=180, check=False)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-10000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
