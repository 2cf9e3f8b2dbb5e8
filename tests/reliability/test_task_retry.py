"""A task whose token request fails for good fails with the step and the fix, and Airflow's own retry runs it again."""

from __future__ import annotations

from pathlib import Path

from tests.airflow_process import airflow, airflow_environment, everything_written, migrate

DAGS = Path(__file__).parent / "dags"


def test_permanent_failure_fails_the_task_with_the_fix_and_airflow_retries_it(emulator, tmp_path):
    info = emulator.info
    emulator.control.remove_bindings(info["service_account"])
    home = tmp_path / "home"
    env = airflow_environment(emulator, home, AIRFLOW__CORE__DAGS_FOLDER=str(DAGS))
    migrate(env)
    result = airflow(["dags", "test", "wif_task_retry"], env, timeout=300, check=False)
    output = everything_written(result, home)
    assert "WifExchangeError" in output
    assert "service account impersonation failed (impersonation)" in output
    assert f"add-iam-policy-binding {info['service_account']}" in output
    # Both tries asked Google: Airflow's retry ran the task again (the stock client may ask more than once per
    # try; our own retries never repeat a permanent answer, see test_fault_tolerance.py).
    denied = [r for r in emulator.control.requests("iam.generateAccessToken") if r["status"] == 403]
    assert len(denied) >= 2, [r["status"] for r in emulator.control.requests()]
    assert not [r for r in emulator.control.requests("iam.generateAccessToken") if r["status"] == 200]
    assert "up_for_retry" in output.lower()
