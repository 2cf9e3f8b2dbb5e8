"""Connection form tests in a real browser: Debian's Chromium (``apt-get install -y chromium``) driven by Playwright.

Playwright's own browser download is never used (``playwright install`` is not run): the tests launch
``/usr/bin/chromium`` and are skipped, with the reason, when it is missing. Each test starts its Airflow server
(API server or webserver) in its own process group with a private ``AIRFLOW_HOME`` and the emulated clouds'
environment, and stops the whole group afterwards. Screenshots go to ``artifacts/ui/``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_process import REPO, stop_process_group

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests.airflow_process import AIRFLOW_VERSION

    no_chromium = pytest.mark.skip(
        reason=f"{CHROMIUM} missing: install Debian's Chromium (`apt-get install -y chromium`, as .ci/run does)"
    )
    version = ".".join(map(str, AIRFLOW_VERSION))
    for item in items:
        if "ui" not in item.keywords:
            continue
        if not CHROMIUM.exists():
            item.add_marker(no_chromium)
        if "airflow2" in item.keywords and AIRFLOW_VERSION[:1] != (2,):
            item.add_marker(pytest.mark.skip(reason=f"Airflow 2.x UI test; this is Airflow {version}"))
        if "airflow3" in item.keywords and AIRFLOW_VERSION[:1] != (3,):
            item.add_marker(pytest.mark.skip(reason=f"Airflow 3.x UI test; this is Airflow {version}"))


class Server:
    """``python -m airflow <args>`` in its own process group and working directory, output to a log file."""

    def __init__(self, name: str, args: list[str], environment: Mapping[str, str], workdir: Path) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "airflow", *args], env=dict(environment),
                                        cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def log(self, tail: int = 15000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def wait_until_answering(self, url: str, timeout: float = SERVER_START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited {self.process.returncode} before answering:\n{self.log()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1)
        pytest.fail(f"{self.name} did not answer {url} within {timeout:.0f}s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the process group (server, gunicorn/uvicorn workers)."""
        stop_process_group(self.process)
        self._log.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """A list to append started :class:`Server` s to; every process group is stopped afterwards."""
    started: list[Server] = []
    try:
        yield started
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A Chromium page (1400x1000). On failure a last screenshot is saved as ``<test>-failure.png``."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(30_000)
            browser_page = context.new_page()
            yield browser_page
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                browser_page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failure.png"), full_page=True)
        finally:
            browser.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


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
