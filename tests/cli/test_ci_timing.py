"""CI's budget check (scripts/ci_timing.py, run by .ci/run) fails a run whose phase took more than twice its
budget, passes one within it, and prints each selection's slowest tests from the JUnit XML pytest writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ci_timing.py"


def ci_timing(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False,
                          env={**os.environ, "GCP_WIF_TIMING_DIR": str(directory)})


def test_a_phase_over_twice_its_budget_fails_the_check_and_one_within_passes(tmp_path):
    assert ci_timing(tmp_path, "record", "lint", "100").returncode == 0  # budget 60: within twice
    within = ci_timing(tmp_path, "report", "--check")
    assert within.returncode == 0, within.stderr
    assert "lint" in within.stdout and "OVER BUDGET" not in within.stdout
    ci_timing(tmp_path, "record", "matrix mwaa-2.9.2 (full)", "1701")  # the "matrix" budget, 850: over twice
    over = ci_timing(tmp_path, "report", "--check")
    assert over.returncode == 1
    assert "matrix mwaa-2.9.2 (full)" in over.stderr and "OVER BUDGET" in over.stdout
    assert ci_timing(tmp_path, "report").returncode == 0  # the table alone never fails


def test_run_records_the_commands_exit_code_and_returns_it(tmp_path):
    failed = ci_timing(tmp_path, "run", "lint", "--", sys.executable, "-c", "raise SystemExit(3)")
    assert failed.returncode == 3
    assert '"exit": 3' in (tmp_path / "phases.jsonl").read_text()


def test_the_report_lists_each_selections_slowest_tests(tmp_path):
    (tmp_path / "junit-mwaa-9.9.9.xml").write_text(
        '<testsuites><testsuite><testcase classname="tests.a" name="test_slow" time="12.5"/>'
        '<testcase classname="tests.a" name="test_fast" time="0.1"/></testsuite></testsuites>')
    report = ci_timing(tmp_path, "report").stdout
    assert "mwaa-9.9.9: 2 tests" in report
    assert report.index("tests.a::test_slow") < report.index("tests.a::test_fast")
