"""The /_emulator/ control plane: faults, request log, counters, configuration, reset."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wif_chain import (
    assume_role,
    exchange,
    federated_token,
    generate_access_token,
    serialize,
    signed_request,
)

from airflow_provider_gcp_wif.testing import DEFAULT_CONFIG, EmulatorControl, EmulatorControlError
from airflow_provider_gcp_wif.testing.defaults import aws_jwt_provider
from airflow_provider_gcp_wif.testing.server import _CONTROLS
from tests.fixtures import wait_until


def _subject_token(info):
    return serialize(signed_request(assume_role(info), info["audience"]))


def test_injected_statuses_are_answered_in_sequence_then_the_endpoint_recovers(emulator):
    info = emulator.info
    emulator.control.inject_faults("sts", statuses=[429, 500, 503])

    statuses = [exchange(info, _subject_token(info)) for _ in range(4)]

    assert [r.status_code for r in statuses] == [429, 500, 503, 200]
    assert statuses[1].json() == {"error": {"code": 500, "message": "Internal error encountered.",
                                            "status": "INTERNAL"}}
    assert statuses[2].json() == {"error": {"code": 503, "message": "The service is currently unavailable.",
                                            "status": "UNAVAILABLE"}}
    assert [r["fault"] for r in emulator.control.requests("sts")] == ["status", "status", "status", None]


def test_iam_rate_limit_fault_uses_the_quota_body(emulator):
    info = emulator.info
    token = federated_token(info)
    emulator.control.inject_faults("iam", statuses=[429])

    response = generate_access_token(info, token, info["service_account"])

    assert response.status_code == 429
    assert response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert generate_access_token(info, token, info["service_account"]).status_code == 200


def test_fault_rate_with_a_seed_is_repeatable(emulator):
    info = emulator.info
    outcomes = []
    for _ in range(2):
        emulator.control.reset()
        emulator.control.inject_faults("storage", rate=0.5, seed=7, statuses=[500])
        outcomes.append([requests.get(f"{info['storage_host']}/storage/v1/b/{info['bucket']}/o",
                                      timeout=10).status_code for _ in range(10)])

    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 500}


def test_reset_fault_drops_the_connection(emulator):
    info = emulator.info
    emulator.control.inject_faults("sts", kinds=["reset"])

    with pytest.raises(requests.ConnectionError):
        exchange(info, _subject_token(info))
    assert exchange(info, _subject_token(info)).status_code == 200


def test_malformed_fault_answers_truncated_json(emulator):
    info = emulator.info
    emulator.control.inject_faults("sts", kinds=["malformed"])

    response = exchange(info, _subject_token(info))

    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_delay_fault_slows_the_answer_down(emulator):
    info = emulator.info
    emulator.control.inject_faults("sts", kinds=["delay"], delay_seconds=0.5)

    started = time.monotonic()
    response = exchange(info, _subject_token(info))

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.5


def test_clear_faults_removes_pending_faults(emulator):
    emulator.control.inject_faults("sts", statuses=[500, 500])
    emulator.control.clear_faults()

    assert exchange(emulator.info, _subject_token(emulator.info)).status_code == 200


def test_request_log_records_the_chain_without_secrets(emulator):
    info = emulator.info
    aws_credentials = assume_role(info)
    subject_token = serialize(signed_request(aws_credentials, info["audience"]))
    sts_response = exchange(info, subject_token)
    federated = sts_response.json()["access_token"]
    sa_token = generate_access_token(info, federated, info["service_account"]).json()["accessToken"]

    log = emulator.control.requests()

    assert [(e["endpoint"], e["status"]) for e in log] == [("sts", 200), ("iam.generateAccessToken", 200)]
    assert set(log[0]) >= {"id", "time", "endpoint", "method", "path", "status", "principal",
                           "token_fingerprint", "pid", "user_agent"}
    assert log[0]["principal"].endswith("/subject/arn:aws:sts::123456789012:assumed-role/wif-role/airflow")
    assert log[0]["token_fingerprint"] == log[1]["token_fingerprint"]  # the IAM call carried that token
    dumped = json.dumps(log)
    for secret in (federated, sa_token, aws_credentials.secret_access_key, aws_credentials.session_token,
                   info["aws_secret_access_key"], subject_token):
        assert secret not in dumped


def test_request_log_names_the_calling_process(emulator):
    info = emulator.info
    requests.get(f"{info['storage_host']}/storage/v1/b/{info['bucket']}/o", headers={"x-gcp-wif-pid": "4242"},
                 timeout=10)

    assert emulator.control.requests("storage")[-1]["pid"] == 4242


def test_counters_count_per_endpoint_and_principal(emulator):
    info = emulator.info
    token = federated_token(info)
    generate_access_token(info, token, info["service_account"])
    generate_access_token(info, token, info["service_account"])

    counters = emulator.control.counters()

    assert counters["sts"] == 1
    assert counters["iam.generateAccessToken"] == 2
    principal = emulator.control.requests("sts")[0]["principal"]
    assert counters["by_principal"][principal] == {"sts": 1, "iam.generateAccessToken": 2}
    emulator.control.clear_log()
    assert emulator.control.counters()["sts"] == 0


def test_configure_deep_merges_objects_and_replaces_lists(emulator):
    emulator.control.configure({"pools": {"aws-pool": {"providers": {"aws-provider": {"strict": True}}}},
                                "project_iam": []})

    config = emulator.control.get_config()

    provider = config["pools"]["aws-pool"]["providers"]["aws-provider"]
    assert provider["strict"] is True and provider["aws_account_id"] == "123456789012"
    assert config["project_iam"] == []


def test_reset_restores_the_default_fixture(emulator):
    emulator.control.set_pool(disabled=True)
    emulator.control.inject_faults("sts", statuses=[500])
    emulator.control.advance_clock(7200)

    emulator.control.reset()

    config = emulator.control.get_config()
    # the one runtime addition: the OIDC provider trusting the emulated AWS issuer (its URL has the moto port)
    jwt_provider = config["pools"]["aws-pool"]["providers"].pop(emulator.info["jwt_provider_id"])
    assert config == DEFAULT_CONFIG
    assert jwt_provider == aws_jwt_provider(emulator.info["aws_issuer_url"], emulator.info["aws_account_id"])
    assert exchange(emulator.info, _subject_token(emulator.info)).status_code == 200


def test_malformed_configuration_is_refused(emulator):
    with pytest.raises(EmulatorControlError, match="attribute_condition"):
        emulator.control.set_provider(attribute_condition={"role_is": "x"})


def test_control_client_works_from_the_control_url_alone(emulator):
    control = EmulatorControl(emulator.info["control_url"])

    assert control.info()["audience"] == emulator.info["audience"]


def test_info_env_describes_airflow_connections(emulator):
    env = emulator.info["env"]
    aws_conn = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    wif_conn = json.loads(env["AIRFLOW_CONN_GCP_WIF_DEFAULT"])

    assert aws_conn["extra"]["role_arn"] == "arn:aws:iam::123456789012:role/wif-role"
    assert wif_conn["conn_type"] == "gcp_wif"
    assert wif_conn["extra"]["sts_endpoint"] == emulator.info["sts_endpoint"]
    assert env["STORAGE_EMULATOR_HOST"] == emulator.info["storage_host"]


def test_injected_iam_403_looks_like_a_binding_still_propagating(emulator):
    info = emulator.info
    token = federated_token(info)
    emulator.control.inject_faults("iam.generateAccessToken", statuses=[403])

    denied = generate_access_token(info, token, info["service_account"])

    assert denied.status_code == 403
    assert denied.json()["error"]["details"][0]["reason"] == "IAM_PERMISSION_DENIED"
    assert generate_access_token(info, token, info["service_account"]).status_code == 200


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                               max_size=4), max_leaves=12)


# Keys the controls read (and the configuration's top level), so that objects reach the handlers' own checks.
_KEYS = ["advance_seconds", "offset_seconds", "endpoint", "statuses", "rate", "kinds", "count", "delay_seconds",
         "seed", "email", "access_key_id", "account_id", "enabled", *DEFAULT_CONFIG]


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(control=st.sampled_from(_CONTROLS),
       body=_JSON | st.dictionaries(st.sampled_from(_KEYS), _JSON, min_size=1, max_size=4))
def test_any_json_body_to_any_control_is_answered_without_a_server_error(emulator, control, body):
    """A control given a JSON value of the wrong shape (a list where an object belongs, a string as a fault spec)
    answers a 4xx saying so, never a 500: a test driving the emulator must see its own mistake."""
    action, method, _ = control
    response = requests.request(method, f"{emulator.info['control_url']}/{action}", data=json.dumps(body),
                                headers={"Content-Type": "application/json"}, timeout=10)
    emulator.control.reset()
    assert response.status_code < 500, (action, method, body, response.text)


def test_clearing_the_faults_answers_a_request_held_by_an_injected_delay(emulator):
    info = emulator.info
    subject_token = _subject_token(info)
    emulator.control.inject_faults("sts", kinds=["delay"], delay_seconds=120, count=1)
    answers: list[int] = []
    held = threading.Thread(target=lambda: answers.append(exchange(info, subject_token).status_code))
    held.start()
    wait_until(lambda: requests.get(info["control_url"] + "/faults", timeout=10).json()[0]["fired"], 30)
    emulator.control.clear_faults()
    held.join(60)  # far below the 120 s hold: only the release can end it in time
    assert answers == [200]
