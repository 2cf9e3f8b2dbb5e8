"""Emulated Google STS: the AWS token exchange and the rejections Google answers with (ERRORS.md)."""

from __future__ import annotations

import pytest
from wif_chain import (
    assume_role,
    exchange,
    google_credentials,
    refreshed,
    serialize,
    signed_request,
    user_credentials,
    with_header,
)

INVALID_TARGET = {
    "error": "invalid_target",
    "error_description": 'The target service indicated by the "audience" parameters is invalid. This might either '
    "be because the pool or provider is disabled or deleted or because it doesn't exist.",
}


def subject_token_for(info, credentials=None, target=None):
    credentials = credentials or assume_role(info)
    return serialize(signed_request(credentials, target or info["audience"]))


def test_assumed_role_exchanges_for_a_federated_token_with_the_oauth_shape(emulator):
    info = emulator.info
    response = exchange(info, subject_token_for(info))

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in"}
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600


def test_google_auth_aws_credentials_refresh_against_the_emulator(emulator):
    credentials = refreshed(google_credentials(emulator.info, assume_role(emulator.info)))

    assert credentials.token
    assert credentials.valid


def test_json_body_with_camel_case_fields_is_accepted(emulator):
    info = emulator.info
    body = {"grantType": "urn:ietf:params:oauth:grant-type:token-exchange",
            "requestedTokenType": "urn:ietf:params:oauth:token-type:access_token",
            "subjectTokenType": "urn:ietf:params:aws:token-type:aws4_request", "audience": info["audience"],
            "scope": "https://www.googleapis.com/auth/cloud-platform", "subjectToken": subject_token_for(info)}
    import requests

    response = requests.post(info["sts_endpoint"], json=body, timeout=30)

    assert response.status_code == 200, response.text


def test_https_prefixed_audience_names_the_same_provider(emulator):
    info = emulator.info
    audience = "https:" + info["audience"]
    response = exchange(info, subject_token_for(info, target=audience), audience=audience)

    assert response.status_code == 200, response.text


def test_federated_token_lifetime_follows_the_configured_ttl(emulator):
    emulator.control.set_token_ttl(sts=120)
    response = exchange(emulator.info, subject_token_for(emulator.info))

    assert response.json()["expires_in"] == 120


@pytest.mark.parametrize("audience", [
    "iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
    "aws-provider",
    "",
])
def test_audience_that_is_not_a_full_resource_name_is_an_invalid_request(emulator, audience):
    response = exchange(emulator.info, subject_token_for(emulator.info, target=audience or "x"), audience=audience)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": 'Invalid value for "audience". This value should be the full resource name of the '
        "Identity Provider.",
    }


@pytest.mark.parametrize("audience", [
    "//iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/aws-pool/providers/nope",
    "//iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/nope/providers/aws-provider",
    "//iam.googleapis.com/projects/wif-demo-project/locations/global/workloadIdentityPools/aws-pool/providers/"
    "aws-provider",
    "//iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/aws-pool",
])
def test_unknown_provider_pool_or_project_id_is_an_invalid_target(emulator, audience):
    response = exchange(emulator.info, subject_token_for(emulator.info, target=audience), audience=audience)

    assert response.status_code == 400
    assert response.json() == INVALID_TARGET


def test_disabled_provider_is_an_invalid_target(emulator):
    emulator.control.set_provider(disabled=True)

    response = exchange(emulator.info, subject_token_for(emulator.info))

    assert response.status_code == 400
    assert response.json() == INVALID_TARGET


def test_disabled_pool_is_an_invalid_target(emulator):
    emulator.control.set_pool(disabled=True)

    response = exchange(emulator.info, subject_token_for(emulator.info))

    assert response.status_code == 400
    assert response.json() == INVALID_TARGET


def test_aws_account_the_provider_does_not_trust_is_rejected(emulator):
    info = emulator.info
    response = exchange(info, subject_token_for(info, assume_role(info, untrusted=True)))

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "The AWS account ID of the given credential does not match the account configured "
        "on the provider.",
    }


def test_attribute_condition_rejects_roles_it_does_not_list(emulator):
    info = emulator.info
    emulator.control.set_provider(attribute_condition={
        "aws_role_in": ["arn:aws:sts::123456789012:assumed-role/some-other-role"]})

    response = exchange(info, subject_token_for(info))

    assert response.status_code == 400
    assert response.json() == {"error": "unauthorized_client",
                               "error_description": "The given credential is rejected by the attribute condition."}


def test_attribute_condition_admits_the_roles_it_lists(emulator):
    info = emulator.info
    emulator.control.set_provider(attribute_condition={
        "aws_role_in": ["arn:aws:sts::123456789012:assumed-role/wif-role"], "aws_account_in": ["123456789012"]})

    assert exchange(info, subject_token_for(info)).status_code == 200


def test_iam_user_is_mapped_by_its_user_arn(emulator):
    info = emulator.info
    response = exchange(info, subject_token_for(info, user_credentials(info)))

    assert response.status_code == 200, response.text
    assert emulator.control.requests("sts")[-1]["principal"].endswith(
        "/subject/arn:aws:iam::123456789012:user/wif-user")


def test_mapped_subject_longer_than_127_bytes_is_rejected(emulator):
    info = emulator.info
    credentials = assume_role(info, role_arn=info["long_role_arn"], session="s" * 64)

    response = exchange(info, subject_token_for(info, credentials))

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The size of mapped attribute google.subject exceeds the 127 bytes limit. Either "
        "modify your attribute mapping or the incoming assertion to produce a mapped attribute that is less "
        "than 127 bytes.",
    }


def test_long_subject_is_accepted_once_the_subject_is_mapped_to_the_role(emulator):
    info = emulator.info
    emulator.control.set_provider(google_subject="role_name")
    credentials = assume_role(info, role_arn=info["long_role_arn"], session="s" * 64)

    assert exchange(info, subject_token_for(info, credentials)).status_code == 200


@pytest.mark.parametrize("scope", [None, "", "cloud-platform", "https://example.com/auth/x"])
def test_missing_or_invalid_scope_is_invalid_scope(emulator, scope):
    response = exchange(emulator.info, subject_token_for(emulator.info), scope=scope)

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_scope", "error_description": "The requested scope is invalid."}


@pytest.mark.parametrize("field", ["grant_type", "requested_token_type", "subject_token_type"])
def test_wrong_token_or_grant_type_is_an_invalid_request(emulator, field):
    response = exchange(emulator.info, subject_token_for(emulator.info), **{field: "urn:wrong"})

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": f'Invalid value for "{field}".'}


@pytest.mark.parametrize("subject_token", ["", "not json", "Authorization: AWS4-HMAC-SHA256"])
def test_subject_token_that_is_not_json_is_an_invalid_request(emulator, subject_token):
    response = exchange(emulator.info, subject_token)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["error_description"].startswith("Invalid format of AWS credentials:")


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda r: {**r, "url": r["url"].replace("amazonaws.com", "amazonaws")}, id="url-host"),
    pytest.param(lambda r: with_header(r, "host", "sts.amazonaws"), id="host-header"),
    pytest.param(lambda r: {**r, "method": "GET"}, id="method"),
    pytest.param(lambda r: {**r, "url": r["url"].replace("GetCallerIdentity", "AssumeRole")}, id="action"),
    pytest.param(lambda r: {**r, "headers": {h["key"]: h["value"] for h in r["headers"]}}, id="headers-dict"),
    pytest.param(lambda r: {**r, "headers": [h for h in r["headers"] if h["key"] != "x-goog-cloud-target-resource"]},
                 id="no-target-resource"),
    pytest.param(lambda r: {**r, "headers": [h for h in r["headers"] if h["key"] != "x-amz-date"]},
                 id="no-date"),
    pytest.param(lambda r: with_header(r, "x-goog-cloud-target-resource", "//iam.googleapis.com/projects/1/x"),
                 id="target-resource-differs"),
])
def test_serialized_request_of_the_wrong_shape_has_invalid_format(emulator, tamper):
    info = emulator.info
    request = tamper(signed_request(assume_role(info), info["audience"]))

    response = exchange(info, serialize(request))

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "AWS request has invalid format."}


def test_sts_service_disabled_is_reported_like_google(emulator):
    emulator.control.configure({"disabled_services": ["sts.googleapis.com"]})

    response = exchange(emulator.info, subject_token_for(emulator.info))

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["status"] == "PERMISSION_DENIED"
    assert error["details"][1]["reason"] == "SERVICE_DISABLED"
