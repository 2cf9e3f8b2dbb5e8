"""Connection form tests in a real browser: Debian's Chromium (``apt-get install -y chromium``) driven by Playwright.

Playwright's own browser download is never used (``playwright install`` is not run): the tests launch
``/usr/bin/chromium`` and are skipped, with the reason, when it is missing. Each test starts its Airflow server
(API server or webserver) in its own process group with a private ``AIRFLOW_HOME`` and the emulated clouds'
environment, and stops the whole group afterwards. Screenshots go to ``artifacts/ui/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Server


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


@pytest.fixture
def servers(components: list[Server]) -> list[Server]:
    """A list to append started :class:`Server` s to; every process group is stopped afterwards (the shared
    ``components`` fixture)."""
    return components


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
