"""A captured subject token cannot be spent on another provider: ours signs ``x-goog-cloud-target-resource``, so
replaying it with another audience either mismatches the header or, with the header rewritten, breaks the AWS
signature. google-auth's stock ``aws.Credentials`` adds the header after signing, and its token, rewritten, IS
accepted by the other provider: the binding is what stops the replay.

Both providers live in the same pool and trust the same AWS account; the second one is not ``strict`` (it does not
require the header to be signed), which is the default of a real provider."""

from __future__ import annotations

import json
import urllib.parse

import pytest
import requests
from google.auth import aws

from airflow_provider_gcp_wif.chain import build_chain
from airflow_provider_gcp_wif.constants import AWS_SUBJECT_TOKEN_TYPE

OTHER_PROVIDER = "other-provider"


@pytest.fixture
def other_audience(emulator, aws_env):
    emulator.control.set_provider(provider_id=OTHER_PROVIDER, disabled=False, aws_account_id=aws_env["aws_account_id"],
                                  attribute_condition=None, google_subject="assertion.arn", strict=False)
    return aws_env["audience"].rsplit("/", 1)[0] + "/" + OTHER_PROVIDER


def exchange_by_hand(aws_env, audience: str, subject_token: str) -> requests.Response:
    """What an attacker holding the subject token would send to Google STS."""
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "audience": audience,
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "subject_token_type": AWS_SUBJECT_TOKEN_TYPE,
        "subject_token": subject_token,
    }
    return requests.post(aws_env["sts_endpoint"], data=form, timeout=30)


def with_target_resource(subject_token: str, audience: str) -> str:
    """The subject token with its ``x-goog-cloud-target-resource`` header rewritten to ``audience``."""
    request = json.loads(urllib.parse.unquote(subject_token))
    for header in request["headers"]:
        if header["key"].lower() == "x-goog-cloud-target-resource":
            header["value"] = audience
    return urllib.parse.quote(json.dumps(request))


def our_subject_token(settings, supplier, google_request) -> str:
    federated = build_chain(settings, supplier).federated  # the STS leg, with or without impersonation
    return federated.retrieve_subject_token(google_request)


def stock_subject_token(audience, supplier, google_request) -> str:
    stock = aws.Credentials(audience=audience, subject_token_type=AWS_SUBJECT_TOKEN_TYPE,
                            token_url="https://sts.googleapis.com/v1/token", aws_security_credentials_supplier=supplier)
    return stock.retrieve_subject_token(google_request)


def test_our_captured_subject_token_works_only_for_its_own_audience(emulator, aws_env, settings_for, role_supplier,
                                                                    other_audience, google_request):
    token = our_subject_token(settings_for(), role_supplier(), google_request)
    # The hand-made exchange is well formed: for the audience it was signed for, Google accepts it.
    assert exchange_by_hand(aws_env, aws_env["audience"], token).status_code == 200

    as_is = exchange_by_hand(aws_env, other_audience, token)
    # Google's answer when the target-resource header does not name the audience asked for.
    assert as_is.status_code == 400 and as_is.json()["error_description"] == "AWS request has invalid format."

    rewritten = exchange_by_hand(aws_env, other_audience, with_target_resource(token, other_audience))
    assert rewritten.status_code == 400 and "SignatureDoesNotMatch" in rewritten.text
    assert [entry["status"] for entry in emulator.control.requests("sts")] == [200, 400, 400]


def test_a_stock_google_auth_subject_token_is_accepted_by_another_provider_once_rewritten(
    emulator, aws_env, role_supplier, other_audience, google_request
):
    token = stock_subject_token(aws_env["audience"], role_supplier(), google_request)
    answer = exchange_by_hand(aws_env, other_audience, with_target_resource(token, other_audience))
    assert answer.status_code == 200 and answer.json()["access_token"]
    (entry,) = emulator.control.requests("sts")
    assert "assumed-role/wif-role/" in entry["aws_arn"], "the other provider let the replayed identity in"


def test_the_other_provider_accepts_our_own_exchange_when_it_is_configured_for_it(
    emulator, aws_env, settings_for, role_supplier, other_audience, google_request
):
    """The rejection above is the binding, not a broken second provider."""
    settings = settings_for(provider_id=OTHER_PROVIDER, impersonation_chain=None)
    token = our_subject_token(settings, role_supplier(), google_request)
    assert exchange_by_hand(aws_env, other_audience, token).status_code == 200
