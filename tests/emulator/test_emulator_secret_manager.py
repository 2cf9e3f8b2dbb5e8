"""Emulated Secret Manager ``versions:access``: the REST answers google-cloud-secret-manager's client reads, and
Google's errors (401, 403 PERMISSION_DENIED, 404 NOT_FOUND) for the cases Airflow's backend tells apart."""

from __future__ import annotations

import base64

import pytest
import requests
from google.api_core import exceptions as api_exceptions
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.oauth2.credentials import Credentials
from wif_chain import federated_token, service_account_token

SECRET = "airflow-variables-greeting"


def _client(info, token):
    return SecretManagerServiceClient(credentials=Credentials(token), transport="rest",
                                      client_options={"api_endpoint": info["secret_manager_endpoint"]})


def _url(info, secret=SECRET, version="latest", project=None):
    return (f"{info['secret_manager_endpoint']}/v1/projects/{project or info['project_id']}/secrets/{secret}"
            f"/versions/{version}:access")


def _grant_service_account(emulator):
    emulator.control.set_secret_iam(SECRET, "roles/secretmanager.secretAccessor",
                                    [f"serviceAccount:{emulator.info['service_account']}"])


def test_the_client_reads_the_latest_version(emulator):
    info = emulator.info
    emulator.control.add_secret_version(SECRET, "hello")
    emulator.control.add_secret_version(SECRET, "hello again ✓")
    _grant_service_account(emulator)

    response = _client(info, service_account_token(info)).access_secret_version(
        request={"name": f"projects/{info['project_id']}/secrets/{SECRET}/versions/latest"})

    assert response.payload.data.decode() == "hello again ✓"
    assert response.name == f"projects/{info['project_number']}/secrets/{SECRET}/versions/2"
    assert emulator.control.requests("secretmanager")[-1]["principal"] == info["service_account"]


def test_a_numbered_version_and_the_answers_shape(emulator):
    info = emulator.info
    emulator.control.add_secret_version(SECRET, "first")
    emulator.control.add_secret_version(SECRET, "second")
    _grant_service_account(emulator)

    response = requests.get(_url(info, version="1"), timeout=30,
                            headers={"Authorization": f"Bearer {service_account_token(info)}"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == f"projects/{info['project_number']}/secrets/{SECRET}/versions/1"
    assert base64.b64decode(body["payload"]["data"]) == b"first"
    assert body["payload"]["dataCrc32c"].isdigit()


def test_a_missing_secret_is_googles_not_found_when_the_caller_may_read_the_project(emulator):
    info = emulator.info
    emulator.control.set_project_iam([{"role": "roles/secretmanager.secretAccessor",
                                       "members": [f"serviceAccount:{info['service_account']}"]}])
    token = service_account_token(info)

    response = requests.get(_url(info, secret="nope"), headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 404
    assert response.json() == {"error": {
        "code": 404, "status": "NOT_FOUND",
        "message": f"Secret [projects/{info['project_number']}/secrets/nope] not found or has no versions."}}
    with pytest.raises(api_exceptions.NotFound):
        _client(info, token).access_secret_version(name=f"projects/{info['project_id']}/secrets/nope/versions/latest")


def test_without_a_role_the_answer_is_permission_denied(emulator):
    info = emulator.info
    emulator.control.add_secret_version(SECRET, "hidden")

    response = requests.get(_url(info), headers={"Authorization": f"Bearer {service_account_token(info)}"},
                            timeout=30)

    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"
    assert "secretmanager.versions.access" in response.json()["error"]["message"]


def test_the_federated_identity_reads_with_a_grant_of_its_own(emulator):
    info = emulator.info
    member = ("principalSet://iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/"
              "aws-pool/attribute.aws_role/arn:aws:sts::123456789012:assumed-role/wif-role")
    emulator.control.add_secret_version(SECRET, "direct", iam=[{"role": "roles/secretmanager.secretAccessor",
                                                                "members": [member]}])

    response = _client(info, federated_token(info)).access_secret_version(
        name=f"projects/{info['project_number']}/secrets/{SECRET}/versions/latest")

    assert response.payload.data == b"direct"


@pytest.mark.parametrize("authorization", [None, "Bearer ya29.not-a-token-this-emulator-issued"])
def test_no_live_token_is_unauthenticated(emulator, authorization):
    emulator.control.add_secret_version(SECRET, "x")
    headers = {"Authorization": authorization} if authorization else {}

    response = requests.get(_url(emulator.info), headers=headers, timeout=30)

    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_another_project_is_denied(emulator):
    info = emulator.info
    emulator.control.add_secret_version(SECRET, "x")
    _grant_service_account(emulator)

    response = requests.get(_url(info, project="someone-elses-project"), timeout=30,
                            headers={"Authorization": f"Bearer {service_account_token(info)}"})

    assert response.status_code == 403


def test_reset_forgets_secrets_added_at_run_time(emulator):
    emulator.control.add_secret_version(SECRET, "x")
    emulator.control.reset()

    assert emulator.control.get_config()["secrets"] == {}
