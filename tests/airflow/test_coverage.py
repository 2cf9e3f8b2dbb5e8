"""`docs/coverage.md` (every Google hook with a `gcp_wif` connection) stays true for the installed Google provider.

`scripts/hook_coverage.py` builds each hook of the installed provider with a `gcp_wif` connection and asks for its
credentials (no network). The committed table is compared in the environment whose provider version it names (the
main venv: latest releases); matrix environments with another provider skip that comparison with the reason, and
check instead that no hook there falls back to other credentials except the ones the table explains."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "hook_coverage.py"
TABLE = ROOT / "docs" / "coverage.md"


@pytest.fixture(scope="module")
def run():
    result = subprocess.run([sys.executable, str(SCRIPT), "--json"], capture_output=True, text=True, timeout=900,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@functools.cache
def script():
    spec = importlib.util.spec_from_file_location("hook_coverage", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def committed_version() -> str:
    match = re.search(r"apache-airflow-providers-google (\S+?):", TABLE.read_text())
    assert match, "docs/coverage.md names no provider version"
    return match.group(1)


def test_committed_table_matches_the_installed_provider(run):
    if run["provider"] != committed_version():
        pytest.skip(f"docs/coverage.md is generated from Google provider {committed_version()} (the main venv's); "
                    f"this environment has {run['provider']}")
    table = script()
    rows = [table.Row(**row) for row in run["rows"]]
    assert table.render(run["provider"], rows) == TABLE.read_text(), (
        "docs/coverage.md is stale: run `python scripts/hook_coverage.py` and review the diff")


def test_every_google_hook_of_this_provider_gets_wif_credentials(run):
    """In every environment of the matrix: a hook whose credentials are not the WIF ones is one the table explains,
    or one that fails with an anonymous Google Cloud connection too (broken in that provider release)."""
    table = script()
    checked = [row for row in run["rows"] if row["kind"] in ("sync", "async") and row["status"] != "unchecked"]
    assert len(checked) > 40, run["rows"]
    unexplained = [row for row in checked if row["status"] == "fails" and row["hook"] not in table.FAILURES]
    assert unexplained == []
    wif = [row for row in checked if row["credentials"] == "WifCredentials"]
    broken = [row for row in checked if row["status"] == "broken"]
    assert len(wif) >= len(checked) - len(table.FAILURES) - len(broken) - 2  # the two Gemini API-key hooks
    assert run["timings"]["hooks"] < 30, run["timings"]  # building ~100 hooks takes seconds (imports aside)
