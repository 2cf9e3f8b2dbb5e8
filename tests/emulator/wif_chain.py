"""Building blocks for the emulator's tests: the keyless chain done with google-auth, boto3 and requests directly
(never the provider's own code, so these tests pin the emulator, not our client)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import boto3
import requests
from google.auth import aws
from google.auth.transport.requests import Request

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
AWS4_REQUEST = "urn:ietf:params:aws:token-type:aws4_request"
REGION = "us-east-1"
CALLER_IDENTITY_URL = "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"


def assume_role(info: dict[str, Any], role_arn: str | None = None, session: str = "airflow",
                untrusted: bool = False) -> aws.AwsSecurityCredentials:
    """Temporary credentials of ``role_arn`` (default ``wif-role``) from emulated AWS, signature-checked."""
    prefix = "untrusted_" if untrusted else ""
    client = boto3.client("sts", endpoint_url=info["aws_endpoint"], region_name=REGION,
                          aws_access_key_id=info[f"{prefix}aws_access_key_id"],
                          aws_secret_access_key=info[f"{prefix}aws_secret_access_key"])
    role_arn = role_arn or info["untrusted_role_arn" if untrusted else "role_arn"]
    credentials = client.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
    return aws.AwsSecurityCredentials(credentials["AccessKeyId"], credentials["SecretAccessKey"],
                                      credentials["SessionToken"])


def user_credentials(info: dict[str, Any], untrusted: bool = False) -> aws.AwsSecurityCredentials:
    prefix = "untrusted_" if untrusted else ""
    return aws.AwsSecurityCredentials(info[f"{prefix}aws_access_key_id"], info[f"{prefix}aws_secret_access_key"])


class StaticSupplier(aws.AwsSecurityCredentialsSupplier):
    def __init__(self, credentials: aws.AwsSecurityCredentials, region: str = REGION) -> None:
        self.credentials = credentials
        self.region = region

    def get_aws_security_credentials(self, context: Any, request: Any) -> aws.AwsSecurityCredentials:
        return self.credentials

    def get_aws_region(self, context: Any, request: Any) -> str:
        return self.region


def google_credentials(info: dict[str, Any], aws_credentials: aws.AwsSecurityCredentials,
                       impersonate: str | None = None, audience: str | None = None,
                       lifetime: int | None = None) -> aws.Credentials:
    """google-auth's own AWS credentials pointed at the emulator (impersonating ``impersonate`` if given)."""
    kwargs: dict[str, Any] = {}
    if impersonate:
        kwargs["service_account_impersonation_url"] = iam_url(info, impersonate, "generateAccessToken")
        if lifetime:
            kwargs["service_account_impersonation_options"] = {"token_lifetime_seconds": lifetime}
    return aws.Credentials(
        audience=audience or info["audience"], subject_token_type=AWS4_REQUEST,
        aws_security_credentials_supplier=StaticSupplier(aws_credentials), token_url=info["sts_endpoint"],
        scopes=[CLOUD_PLATFORM], **kwargs,
    )


def refreshed(credentials: aws.Credentials) -> aws.Credentials:
    credentials.refresh(Request())
    return credentials


def signed_request(aws_credentials: aws.AwsSecurityCredentials, target_resource: str,
                   sign_target: bool = False, region: str = REGION, payload: str = "") -> dict[str, Any]:
    """The serialized GetCallerIdentity request, as google-auth builds it (target header added after signing)
    or, with ``sign_target``, with ``x-goog-cloud-target-resource`` signed in."""
    url = CALLER_IDENTITY_URL.format(region=region)
    signer = aws.RequestSigner(region)
    extra = {"x-goog-cloud-target-resource": target_resource} if sign_target else {}
    options = signer.get_request_options(aws_credentials, url, "POST", request_payload=payload,
                                         additional_headers=extra)
    headers = dict(options["headers"])
    headers["x-goog-cloud-target-resource"] = target_resource
    return {"url": url, "method": "POST",
            "headers": [{"key": key, "value": value} for key, value in headers.items()]}


def serialize(request: dict[str, Any]) -> str:
    return urllib.parse.quote(json.dumps(request, separators=(",", ":")))


def with_header(request: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    """A copy of a serialized request with one header's value replaced (or added)."""
    headers = [dict(h) for h in request["headers"] if h["key"].lower() != key.lower()]
    headers.append({"key": key, "value": value})
    return {**request, "headers": headers}


def header(request: dict[str, Any], key: str) -> str:
    return next(h["value"] for h in request["headers"] if h["key"].lower() == key.lower())


def exchange(info: dict[str, Any], subject_token: str, audience: str | None = None,
             scope: str | None = CLOUD_PLATFORM, as_json: bool = False, **overrides: str) -> requests.Response:
    """A raw ``POST /v1/token`` (form-encoded, as google-auth sends it, or JSON)."""
    body: dict[str, str] = {
        "grant_type": TOKEN_EXCHANGE, "requested_token_type": ACCESS_TOKEN, "subject_token_type": AWS4_REQUEST,
        "audience": info["audience"] if audience is None else audience, "subject_token": subject_token,
    }
    if scope is not None:
        body["scope"] = scope
    body.update(overrides)
    if as_json:
        return requests.post(info["sts_endpoint"], json=body, timeout=30)
    return requests.post(info["sts_endpoint"], data=body, timeout=30)


def federated_token(info: dict[str, Any], aws_credentials: aws.AwsSecurityCredentials | None = None,
                    scope: str = CLOUD_PLATFORM) -> str:
    aws_credentials = aws_credentials or assume_role(info)
    response = exchange(info, serialize(signed_request(aws_credentials, info["audience"])), scope=scope)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def iam_url(info: dict[str, Any], email: str, method: str) -> str:
    return f"{info['iam_endpoint']}/v1/projects/-/serviceAccounts/{email}:{method}"


def generate_access_token(info: dict[str, Any], bearer: str | None, email: str,
                          body: dict[str, Any] | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    payload = {"scope": [CLOUD_PLATFORM]} if body is None else body
    return requests.post(iam_url(info, email, "generateAccessToken"), json=payload, headers=headers, timeout=30)


def service_account_token(info: dict[str, Any], email: str | None = None, bearer: str | None = None,
                          **body: Any) -> str:
    response = generate_access_token(info, bearer or federated_token(info), email or info["service_account"],
                                      {"scope": [CLOUD_PLATFORM], **body})
    assert response.status_code == 200, response.text
    return response.json()["accessToken"]


def storage_get(info: dict[str, Any], path: str, token: str | None, **params: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{info['storage_host']}/storage/v1/{path}", headers=headers, params=params, timeout=30)
