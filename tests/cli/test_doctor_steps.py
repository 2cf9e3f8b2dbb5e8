"""The doctor is a list of small steps, each returning one check; the runner reports a step after a failed one as
skipped and leaves out a step that does not apply. The real steps run end to end in test_doctor*.py."""

from __future__ import annotations

from airflow_provider_gcp_wif.cli.doctor_command import FAIL, OK, SKIP, STEPS, WARN, Check, Doctor, Step


def step(name: str, status: str, applies: bool = True) -> Step:
    return Step(name, lambda doctor: Check(name, status, f"{name} ran"), applies=lambda doctor: applies)


def test_the_checklist_is_the_documented_steps_in_order():
    assert [s.name for s in STEPS] == ["settings", "AWS identity", "subject length", "web identity token",
                                       "STS exchange", "impersonation", "API call"]


def test_a_failed_step_skips_the_rest_and_a_step_that_does_not_apply_is_left_out():
    runner = Doctor(None, steps=[step("a", OK), step("b", WARN), step("c", OK, applies=False), step("d", FAIL),
                                 step("e", OK), step("f", OK, applies=False)])
    checks = runner.run()
    assert [(c.name, c.status) for c in checks] == [("a", OK), ("b", WARN), ("d", FAIL), ("e", SKIP)]
    assert runner.failed and all(c.seconds is not None for c in checks if c.status != SKIP)
    assert checks[-1].detail == "not run: an earlier step failed." and checks[-1].seconds is None


def test_without_settings_the_jwt_only_step_is_left_out_and_the_rest_is_skipped(monkeypatch):
    for name in ("GCP_PROJECT_NUMBER", "GCP_WORKLOAD_ID", "GCP_WORKLOAD_PROVIDER", "AWS_ROLE_NAME"):
        monkeypatch.delenv(name, raising=False)
    checks = Doctor(None, api_call=False).run()
    assert [(c.name, c.status) for c in checks] == [
        ("settings", FAIL), ("AWS identity", SKIP), ("subject length", SKIP), ("STS exchange", SKIP),
        ("impersonation", SKIP), ("API call", SKIP)]
