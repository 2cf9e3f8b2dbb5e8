"""`gcp-wif doctor`: one visible step at a time, the fix for what fails, exit 0 only when nothing failed."""

from __future__ import annotations

import json

import pytest

from airflow_provider_gcp_wif.cli.doctor_command import api_base_url
from airflow_provider_gcp_wif.config import WifSettings

from .running import gcp_wif_extra, issued_token_fingerprints, printed_token_fingerprints, run_cli, statuses

STEPS = ["settings", "AWS identity", "subject length", "STS exchange", "impersonation", "API call"]


def test_all_checks_pass_from_the_seed_variables_and_no_token_or_secret_is_printed(emulator, seed_env):
    code, out, _ = run_cli("doctor")
    assert code == 0, out
    assert statuses(out) == dict.fromkeys(STEPS, "OK")
    assert "arn:aws:sts::123456789012:assumed-role/wif-role/" in out
    assert "all checks passed" in out
    # The exchange really happened, one visible step each, and none of the issued tokens was printed.
    assert [r["status"] for r in emulator.control.requests("sts")] == [200]
    assert [r["status"] for r in emulator.control.requests("iam.generateAccessToken")] == [200]
    assert [r["status"] for r in emulator.control.requests("crm")] == [200]
    issued = issued_token_fingerprints(emulator)
    assert issued and not issued & printed_token_fingerprints(out)
    assert emulator.info["aws_secret_access_key"] not in out


def test_all_checks_pass_for_an_airflow_connection(emulator, conn_env):
    code, out, _ = run_cli("doctor", "--conn-id", "gcp_wif_default")
    assert code == 0, out
    assert statuses(out) == dict.fromkeys(STEPS, "OK")
    assert "connection 'gcp_wif_default'" in out
    # The sample call names the connection's project.
    assert f"/v1/projects/{conn_env['project_id']} -> 200" in out
    assert emulator.control.requests("crm")[0]["principal"] == conn_env["service_account"]


def test_a_removed_binding_fails_impersonation_with_the_exact_principal_set_to_bind(emulator, seed_env):
    emulator.control.remove_bindings(emulator.info["service_account"])
    code, out, _ = run_cli("doctor")
    assert code == 1
    assert statuses(out) == {"settings": "OK", "AWS identity": "OK", "subject length": "OK", "STS exchange": "OK",
                             "impersonation": "FAIL", "API call": "SKIP"}
    assert "Permission 'iam.serviceAccounts.getAccessToken' denied" in out
    member = ("principalSet://iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/"
              "aws-pool/attribute.aws_role/arn:aws:sts::123456789012:assumed-role/wif-role")
    assert f"gcloud iam service-accounts add-iam-policy-binding {seed_env['GCP_SERVICE_ACCOUNT_EMAIL']}" in out
    assert f'--member="{member}"' in out
    assert "Result: FAILED" in out


def test_a_bad_setting_names_the_variable_and_skips_the_rest(emulator, seed_env, monkeypatch):
    monkeypatch.setenv("GCP_PROJECT_NUMBER", "wif-demo-project")
    code, out, _ = run_cli("doctor")
    assert code == 1
    assert statuses(out)["settings"] == "FAIL"
    assert "GCP_PROJECT_NUMBER: project number 'wif-demo-project' must be digits only" in out
    assert "gcloud projects describe" in out  # the fix
    assert [statuses(out)[step] for step in STEPS[1:]] == ["SKIP"] * 5
    assert emulator.control.requests() == []


def test_a_bad_connection_extra_names_the_field_and_the_connection(emulator, conn_env, set_conn):
    set_conn("gcp_wif_bad", "gcp_wif", gcp_wif_extra(conn_env, pool_id="gcp-reserved"))
    code, out, _ = run_cli("doctor", "--conn-id", "gcp_wif_bad")
    assert code == 1
    assert "pool_id: pool id 'gcp-reserved' starts with 'gcp-'" in out
    assert "(connection 'gcp_wif_bad')" in out


def test_a_disabled_provider_fails_the_sts_step_with_googles_reason_and_the_re_enable_command(emulator, seed_env):
    emulator.control.set_provider(disabled=True)
    code, out, _ = run_cli("doctor")
    assert code == 1
    assert statuses(out)["STS exchange"] == "FAIL" and statuses(out)["impersonation"] == "SKIP"
    assert "invalid_target" in out
    assert "providers update-aws aws-provider --workload-identity-pool=aws-pool --location=global --no-disabled" in out


def test_a_subject_over_127_bytes_warns_and_the_sts_step_confirms_it(emulator, conn_env, set_conn):
    aws = json.loads(conn_env["env"]["AIRFLOW_CONN_AWS_DEFAULT"])
    aws["extra"].update(role_arn=conn_env["long_role_arn"], assume_role_kwargs={"RoleSessionName": "s" * 64})
    set_conn("aws_long", "aws", aws["extra"], login=aws["login"], password=aws["password"])
    set_conn("gcp_wif_long", "gcp_wif", gcp_wif_extra(conn_env, aws_conn_id="aws_long"))
    code, out, _ = run_cli("doctor", "--conn-id", "gcp_wif_long")
    assert code == 1
    assert statuses(out)["subject length"] == "WARN"
    assert statuses(out)["STS exchange"] == "FAIL"
    assert "exceeds the 127 bytes limit" in out
    assert "--attribute-mapping=\"google.subject=assertion.arn.contains('assumed-role') ? assertion.account" in out
    # Google's default attribute.aws_role, which the setup's condition and principalSet binding rely on, is kept.
    assert "attribute.aws_role=assertion.arn.contains('assumed-role') ? assertion.arn.extract('{account_arn}" in out


def test_a_project_the_account_may_not_read_is_a_warning_not_a_failure(emulator, conn_env, set_conn):
    set_conn("gcp_wif_other", "gcp_wif", gcp_wif_extra(conn_env, project="someone-elses-project"))
    code, out, _ = run_cli("doctor", "--conn-id", "gcp_wif_other")
    assert code == 0, out
    assert statuses(out)["API call"] == "WARN"
    assert "-> 403" in out and "roles/browser" in out


def test_direct_resource_access_uses_the_federated_token_for_the_api_call(emulator, conn_env, set_conn):
    set_conn("gcp_wif_direct", "gcp_wif", gcp_wif_extra(conn_env, impersonation_chain=None))
    code, out, _ = run_cli("doctor", "--conn-id", "gcp_wif_direct")
    assert code == 0, out
    assert "not configured: the federated token is used directly" in out
    assert emulator.control.requests("iam.generateAccessToken") == []
    assert emulator.control.requests("crm")[0]["principal"].startswith("principal://iam.googleapis.com/")


def test_json_output_lists_every_check(emulator, seed_env):
    emulator.control.remove_bindings(emulator.info["service_account"])
    code, out, _ = run_cli("doctor", "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert [c["check"] for c in report["checks"]] == STEPS
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert [c["check"] for c in failed] == ["impersonation"] and "principalSet://" in failed[0]["fix"]


def test_no_api_call_skips_only_that_step(emulator, seed_env):
    code, out, _ = run_cli("doctor", "--no-api-call")
    assert code == 0
    assert statuses(out)["API call"] == "SKIP"
    assert emulator.control.requests("crm") == []


def test_an_unknown_connection_fails_the_settings_step(emulator, conn_env):
    code, out, _ = run_cli("doctor", "--conn-id", "no_such_connection")
    assert code == 1
    assert statuses(out)["settings"] == "FAIL" and "no_such_connection" in out
    assert "@task" not in out  # not started by a task: no advice about task subprocesses


def test_in_a_task_subprocess_on_airflow_3_an_unreadable_connection_gets_the_in_task_route(emulator, conn_env,
                                                                                            monkeypatch):
    from importlib.metadata import version

    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "check")  # what a BashOperator exports to its command
    code, out, _ = run_cli("doctor", "--conn-id", "no_such_connection")
    assert code == 1 and statuses(out)["settings"] == "FAIL"
    advised = "from airflow_provider_gcp_wif.cli.doctor_command import doctor" in out and "@task" in out
    assert advised == (int(version("apache-airflow").split(".")[0]) >= 3), out


@pytest.mark.parametrize(
    ("sts_endpoint", "universe", "expected"),
    [
        (None, None, "https://cloudresourcemanager.googleapis.com"),
        ("https://sts-corp.p.googleapis.com/v1/token", None, "https://cloudresourcemanager-corp.p.googleapis.com"),
        ("http://127.0.0.1:4443/v1/token", None, "http://127.0.0.1:4443"),
    ],
)
def test_the_sample_call_goes_to_resource_manager_psc_or_the_emulator(sts_endpoint, universe, expected):
    extras = {"project_number": "1234", "pool_id": "aws-pool", "provider_id": "aws-provider",
              "sts_endpoint": sts_endpoint, "universe_domain": universe}
    settings = WifSettings.from_extras({k: v for k, v in extras.items() if v}, allowed_endpoint_hosts="127.0.0.1")
    assert api_base_url(settings) == expected


@pytest.mark.parametrize("api_url", ["http://127.0.0.1:{port}\\.googleapis.com", "https://crm.attacker.example",
                                     "http://user:pw@127.0.0.1:{port}", "http://127.0.0.1:{port}/x?key=1",
                                     "http://localhost:{port}"])
def test_an_api_url_outside_the_allow_list_gets_no_token(emulator, seed_env, api_url):
    """--api-url is where the doctor sends the access token: held to the endpoint grammar and allow-list (the
    deployment lists the emulator's 127.0.0.1, not ``localhost``: a local listener there gets nothing)."""
    from tests.fixtures import listening_decoy

    with listening_decoy() as (port, received):
        code, out, _ = run_cli("doctor", "--api-url", api_url.format(port=port))
    assert not received, f"the decoy received: {received[0][:200]!r}"
    assert code == 1
    assert statuses(out)["API call"] == "FAIL"
    assert "--api-url" in out
    assert "pw@" not in out and "key=1" not in out
