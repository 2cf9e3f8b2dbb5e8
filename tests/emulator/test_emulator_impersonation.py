"""Emulated IAM Service Account Credentials: who may mint a service-account token, for how long, and the
bodies Google answers with otherwise."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
import requests
from wif_chain import (
    CLOUD_PLATFORM,
    assume_role,
    federated_token,
    generate_access_token,
    google_credentials,
    iam_url,
    refreshed,
    service_account_token,
)

GET_ACCESS_TOKEN_DENIED = {"error": {
    "code": 403,
    "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
    "status": "PERMISSION_DENIED",
    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
                 "domain": "iam.googleapis.com", "metadata": {"permission": "iam.serviceAccounts.getAccessToken"}}],
}}
INVALID_ARGUMENT = {"error": {"code": 400, "message": "Request contains an invalid argument.",
                              "status": "INVALID_ARGUMENT"}}


def _expire_time(response):
    return dt.datetime.strptime(response.json()["expireTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def test_google_auth_impersonates_the_bound_service_account(emulator):
    info = emulator.info
    credentials = refreshed(google_credentials(info, assume_role(info), impersonate=info["service_account"]))

    assert credentials.token.startswith("ya29.")
    assert [r["endpoint"] for r in emulator.control.requests()] == ["sts", "iam.generateAccessToken"]


def test_access_token_response_has_rfc3339_expire_time_an_hour_ahead(emulator):
    info = emulator.info
    response = generate_access_token(info, federated_token(info), info["service_account"])

    assert response.status_code == 200, response.text
    assert set(response.json()) == {"accessToken", "expireTime"}
    remaining = _expire_time(response) - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(minutes=59) < remaining <= dt.timedelta(hours=1, seconds=1)


def test_principal_without_a_binding_is_denied_with_googles_body(emulator):
    info = emulator.info
    emulator.control.remove_bindings(info["service_account"])

    response = generate_access_token(info, federated_token(info), info["service_account"])

    assert response.status_code == 403
    assert response.json() == GET_ACCESS_TOKEN_DENIED


def test_unknown_service_account_gets_the_same_denial(emulator):
    info = emulator.info
    response = generate_access_token(info, federated_token(info), "nobody@wif-demo-project.iam.gserviceaccount.com")

    assert response.status_code == 403
    assert response.json() == GET_ACCESS_TOKEN_DENIED


def test_binding_on_the_principal_subject_is_honoured(emulator):
    info = emulator.info
    emulator.control.remove_bindings(info["service_account"])
    subject = ("principal://iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/"
               "aws-pool/subject/arn:aws:sts::123456789012:assumed-role/wif-role/airflow")
    emulator.control.add_binding(info["service_account"], "roles/iam.workloadIdentityUser", subject)

    response = generate_access_token(info, federated_token(info), info["service_account"])

    assert response.status_code == 200, response.text


def test_lifetime_over_an_hour_without_the_org_policy_is_refused(emulator):
    info = emulator.info
    response = generate_access_token(info, federated_token(info), info["service_account"],
                                     {"scope": [CLOUD_PLATFORM], "lifetime": "7200s"})

    assert response.status_code == 400
    assert response.json() == {"error": {
        "code": 400, "status": "INVALID_ARGUMENT",
        "message": f"Access tokens for service account {info['service_account']} can not have lifetimes of more "
        "than 1 hour. Use the Org Policy Constraint constraints/iam.allowServiceAccountCredentialLifetimeExtension "
        "to allow up to 12 hours.",
    }}


def test_lifetime_over_an_hour_is_granted_where_the_org_policy_lists_the_account(emulator):
    info = emulator.info
    emulator.control.set_org_policy_lifetime_extension([info["service_account"]])

    response = generate_access_token(info, federated_token(info), info["service_account"],
                                     {"scope": [CLOUD_PLATFORM], "lifetime": "7200s"})

    assert response.status_code == 200, response.text
    assert _expire_time(response) - dt.datetime.now(dt.timezone.utc) > dt.timedelta(minutes=119)


@pytest.mark.parametrize("body", [
    {},
    {"scope": []},
    {"scope": ["https://run.example.com/service"]},
    {"scope": [CLOUD_PLATFORM], "lifetime": "an hour"},
    {"scope": [CLOUD_PLATFORM], "delegates": ["airflow-wif@wif-demo-project.iam.gserviceaccount.com"]},
])
def test_missing_scope_or_malformed_argument_is_invalid_argument(emulator, body):
    info = emulator.info
    response = generate_access_token(info, federated_token(info), info["service_account"], body)

    assert response.status_code == 400
    assert response.json() == INVALID_ARGUMENT


def test_disabled_service_account_fails_its_precondition(emulator):
    info = emulator.info
    emulator.control.configure({"service_accounts": {info["service_account"]: {"disabled": True}}})

    response = generate_access_token(info, federated_token(info), info["service_account"])

    assert response.status_code == 400
    assert response.json() == {"error": {"code": 400, "message": "Precondition check failed.",
                                         "status": "FAILED_PRECONDITION"}}


@pytest.mark.parametrize("bearer", [None, "garbage", "ya29.emu-fed-unknown"])
def test_missing_or_unknown_bearer_is_unauthenticated(emulator, bearer):
    info = emulator.info
    response = generate_access_token(info, bearer, info["service_account"])

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["status"] == "UNAUTHENTICATED"
    assert error["details"][0]["reason"] == "ACCESS_TOKEN_EXPIRED"
    assert error["details"][0]["metadata"]["method"] == "google.iam.credentials.v1.IAMCredentials.GenerateAccessToken"


def test_expired_federated_token_is_unauthenticated(emulator):
    info = emulator.info
    emulator.control.set_token_ttl(sts=60)
    token = federated_token(info)
    emulator.control.advance_clock(61)

    response = generate_access_token(info, token, info["service_account"])

    assert response.status_code == 401
    assert response.json()["error"]["details"][0]["reason"] == "ACCESS_TOKEN_EXPIRED"


def test_federated_token_with_a_narrow_scope_is_scope_insufficient(emulator):
    info = emulator.info
    token = federated_token(info, scope="https://www.googleapis.com/auth/devstorage.read_only")

    response = generate_access_token(info, token, info["service_account"])

    assert response.status_code == 403
    assert response.json()["error"]["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


def test_delegation_chain_goes_through_token_creator(emulator):
    info = emulator.info
    response = generate_access_token(info, federated_token(info), info["target_service_account"], {
        "scope": [CLOUD_PLATFORM], "delegates": [f"projects/-/serviceAccounts/{info['service_account']}"]})

    assert response.status_code == 200, response.text


def test_delegation_chain_with_a_missing_hop_is_denied(emulator):
    info = emulator.info
    emulator.control.remove_bindings(info["target_service_account"])

    response = generate_access_token(info, federated_token(info), info["target_service_account"], {
        "scope": [CLOUD_PLATFORM], "delegates": [f"projects/-/serviceAccounts/{info['service_account']}"]})

    assert response.status_code == 403
    assert response.json() == GET_ACCESS_TOKEN_DENIED


def test_federated_principal_cannot_skip_the_chain(emulator):
    info = emulator.info
    response = generate_access_token(info, federated_token(info), info["target_service_account"])

    assert response.json() == GET_ACCESS_TOKEN_DENIED


def test_service_account_token_impersonates_the_next_account_with_token_creator(emulator):
    info = emulator.info
    first = service_account_token(info)

    response = generate_access_token(info, first, info["target_service_account"])

    assert response.status_code == 200, response.text


def test_iam_ttl_overrides_the_requested_lifetime(emulator):
    info = emulator.info
    emulator.control.set_token_ttl(iam=30)

    response = generate_access_token(info, federated_token(info), info["service_account"])

    assert _expire_time(response) - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(seconds=31)


def test_id_token_carries_the_audience_and_email(emulator):
    info = emulator.info
    response = requests.post(iam_url(info, info["service_account"], "generateIdToken"),
                             json={"audience": "https://example.run.app", "includeEmail": True},
                             headers={"Authorization": f"Bearer {federated_token(info)}"}, timeout=30)

    assert response.status_code == 200, response.text
    payload = response.json()["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == "https://example.run.app"
    assert claims["email"] == info["service_account"]


def test_id_token_without_permission_is_denied_with_googles_body(emulator):
    info = emulator.info
    emulator.control.remove_bindings(info["service_account"])
    response = requests.post(iam_url(info, info["service_account"], "generateIdToken"),
                             json={"audience": "https://example.run.app"},
                             headers={"Authorization": f"Bearer {federated_token(info)}"}, timeout=30)

    assert response.status_code == 403
    assert response.json() == {"error": {
        "code": 403, "status": "PERMISSION_DENIED",
        "message": "Permission 'iam.serviceAccounts.getOpenIdToken' denied on resource (or it may not exist)."}}
