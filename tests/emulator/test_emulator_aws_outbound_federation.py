"""Emulated AWS IAM outbound identity federation: ``GetWebIdentityToken`` called with boto3's real client (SigV4
signed, signature-checked by the moto child), JWTs verified by google-auth against the JWKS the account's loopback
issuer serves, and AWS's errors as botocore models them."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from google.auth import jwt as google_jwt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif.testing import aws_outbound

REGION = "us-east-1"
NAMESPACE = "https://sts.amazonaws.com/"


def client(info: dict[str, Any], service: str, credentials: dict[str, str] | None = None,
           untrusted: bool = False) -> Any:
    prefix = "untrusted_" if untrusted else ""
    credentials = credentials or {"AccessKeyId": info[f"{prefix}aws_access_key_id"],
                                  "SecretAccessKey": info[f"{prefix}aws_secret_access_key"]}
    return boto3.client(service, endpoint_url=info["aws_endpoint"], region_name=REGION,
                        aws_access_key_id=credentials["AccessKeyId"],
                        aws_secret_access_key=credentials["SecretAccessKey"],
                        aws_session_token=credentials.get("SessionToken"))


def role_session(info: dict[str, Any], role_arn: str | None = None, duration: int = 3600) -> dict[str, str]:
    return client(info, "sts").assume_role(RoleArn=role_arn or info["role_arn"], RoleSessionName="airflow",
                                           DurationSeconds=duration)["Credentials"]


@contextlib.contextmanager
def no_jwt_role_allowed(info: dict[str, Any], *statements: dict[str, Any]) -> Iterator[Any]:
    """For the block, the fixture's role that lacks sts:GetWebIdentityToken holds an inline policy of
    ``statements``; yields an STS client of a session of that role. The policy is removed afterwards."""
    iam = client(info, "iam")
    role_name = info["no_jwt_role_arn"].rsplit("/", 1)[1]
    iam.put_role_policy(RoleName=role_name, PolicyName="jwt", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": list(statements)}))
    try:
        yield client(info, "sts", role_session(info, info["no_jwt_role_arn"]))
    finally:
        iam.delete_role_policy(RoleName=role_name, PolicyName="jwt")


def jwk_to_pem(jwk: dict[str, Any]) -> str:
    """A JWK as PEM (what google-auth's ``jwt.decode`` takes), by the RFC 7518 definitions."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def integer(value: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")

    if jwk["kty"] == "RSA":
        key: Any = rsa.RSAPublicNumbers(integer(jwk["e"]), integer(jwk["n"])).public_key()
    else:
        assert jwk["crv"] == "P-384"
        key = ec.EllipticCurvePublicNumbers(integer(jwk["x"]), integer(jwk["y"]), ec.SECP384R1()).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def served_certs(issuer: str) -> dict[str, str]:
    discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == issuer
    jwks = requests.get(discovery["jwks_uri"], timeout=10).json()
    return {jwk["kid"]: jwk_to_pem(jwk) for jwk in jwks["keys"]}


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return (json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
            json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = excinfo.value.response
    return (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"])


@pytest.fixture(scope="module")
def role_credentials(cloud_emulator: Any) -> dict[str, str]:
    return role_session(cloud_emulator.info)


_audience = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60)


@settings(derandomize=True, max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(audiences=st.lists(_audience, min_size=1, max_size=3, unique=True),
       algorithm=st.sampled_from(["RS256", "ES384"]), duration=st.integers(60, 3000),
       tags=st.dictionaries(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
                            st.from_regex(r"[a-z0-9 ]{0,12}", fullmatch=True), max_size=3),
       as_role=st.booleans())
def test_every_minted_jwt_verifies_with_google_auth_against_the_served_jwks(
        emulator: Any, role_credentials: dict[str, str], audiences: list[str], algorithm: str, duration: int,
        tags: dict[str, str], as_role: bool) -> None:
    """Differential oracle: google-auth's own JWT verification (signature, iat/exp) against the issuer's JWKS
    accepts every token, and its claims are the ones AWS documents for the caller."""
    info = emulator.info
    sts = client(info, "sts", role_credentials if as_role else None)

    answer = sts.get_web_identity_token(Audience=audiences, SigningAlgorithm=algorithm, DurationSeconds=duration,
                                        Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    token = answer["WebIdentityToken"]
    header, _ = unverified(token)
    assert header["alg"] == algorithm and header["kid"] == {"RS256": "RSA_0", "ES384": "EC384_0"}[algorithm]
    claims = google_jwt.decode(token, certs=served_certs(info["aws_issuer_url"]),
                               audience=audiences[0] if len(audiences) == 1 else None)
    assert claims["iss"] == info["aws_issuer_url"]
    assert claims["aud"] == (audiences[0] if len(audiences) == 1 else audiences)
    assert claims["exp"] - claims["iat"] == duration
    assert int(answer["Expiration"].timestamp()) == claims["exp"]
    expected_sub = info["role_arn"] if as_role else f"arn:aws:iam::{info['aws_account_id']}:user/wif-user"
    assert claims["sub"] == expected_sub
    namespace = claims[NAMESPACE]
    assert namespace["aws_account"] == info["aws_account_id"]
    assert namespace["source_region"] == REGION
    assert namespace["principal_id"] == expected_sub
    assert namespace.get("request_tags", {}) == tags
    assert ("original_session_exp" in namespace) is as_role


def test_tokens_are_unique_and_a_tampered_token_fails_google_auth_verification(emulator: Any) -> None:
    info = emulator.info
    sts = client(info, "sts")
    first = sts.get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256")["WebIdentityToken"]
    second = sts.get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256")["WebIdentityToken"]
    assert unverified(first)[1]["jti"] != unverified(second)[1]["jti"]
    header, _payload, signature = first.split(".")
    claims = unverified(first)[1]
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "arn:aws:iam::1:role/x"}).encode()).rstrip(b"=")

    with pytest.raises(ValueError, match="signature"):
        google_jwt.decode(f"{header}.{forged.decode()}.{signature}", certs=served_certs(info["aws_issuer_url"]),
                          audience="aud")


def test_right_secret_passes_and_wrong_secret_is_signature_does_not_match(emulator: Any) -> None:
    info = emulator.info
    forged = {"AccessKeyId": info["aws_access_key_id"], "SecretAccessKey": "x" * 40}
    assert client(info, "sts").get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256")

    with pytest.raises(ClientError) as excinfo:
        client(info, "sts", forged).get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256")

    assert error_of(excinfo)[:2] == (403, "SignatureDoesNotMatch")


def test_unsigned_request_is_missing_authentication_token_unlike_the_signed_one(emulator: Any) -> None:
    info = emulator.info
    params = {"Audience": ["aud"], "SigningAlgorithm": "RS256"}
    assert client(info, "sts").get_web_identity_token(**params)["WebIdentityToken"].count(".") == 2

    response = requests.post(info["aws_endpoint"], timeout=10, data={
        "Action": "GetWebIdentityToken", "Version": "2011-06-15", "Audience.member.1": "aud",
        "SigningAlgorithm": "RS256"})

    assert response.status_code == 403 and "MissingAuthenticationToken" in response.text


def test_disabled_feature_is_refused_with_aws_error_and_reset_restores_it(emulator: Any) -> None:
    info = emulator.info
    emulator.control.set_aws_outbound_federation(False)
    sts = client(info, "sts")

    with pytest.raises(ClientError) as excinfo:
        sts.get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256")

    assert error_of(excinfo) == (403, "OutboundWebIdentityFederationDisabledException",
                                 aws_outbound.FEATURE_DISABLED_STS_MESSAGE)
    assert isinstance(excinfo.value, sts.exceptions.OutboundWebIdentityFederationDisabledException)
    emulator.control.reset()
    assert sts.get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256")["WebIdentityToken"]


def test_untrusted_account_has_the_feature_disabled_and_its_own_issuer(emulator: Any) -> None:
    info = emulator.info
    with pytest.raises(ClientError) as excinfo:
        client(info, "sts", untrusted=True).get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256")
    assert error_of(excinfo)[1] == "OutboundWebIdentityFederationDisabledException"
    assert emulator.control.aws_issuer(info["untrusted_aws_account_id"]) != info["aws_issuer_url"]


def test_role_without_the_permission_is_access_denied(emulator: Any) -> None:
    info = emulator.info
    credentials = role_session(info, info["no_jwt_role_arn"])

    with pytest.raises(ClientError) as excinfo:
        client(info, "sts", credentials).get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256")

    assert error_of(excinfo) == (
        403, "AccessDenied", f"User: arn:aws:sts::{info['aws_account_id']}:assumed-role/"
        "wif-role-without-web-identity-token/airflow is not authorized to perform: sts:GetWebIdentityToken "
        "because no identity-based policy allows the sts:GetWebIdentityToken action")


def test_condition_keys_for_audience_duration_and_algorithm_are_enforced(emulator: Any) -> None:
    """The policy AWS's guide shows: audience pinned (ForAllValues), duration capped, algorithm fixed."""
    with no_jwt_role_allowed(emulator.info, {
            "Effect": "Allow", "Action": "sts:GetWebIdentityToken", "Resource": "*", "Condition": {
                "ForAllValues:StringEquals": {"sts:IdentityTokenAudience": ["https://good"]},
                "NumericLessThanEquals": {"sts:DurationSeconds": 300},  # a JSON number, as in AWS's examples
                "StringEquals": {"sts:SigningAlgorithm": "ES384"}}}) as sts:
        assert sts.get_web_identity_token(Audience=["https://good"], SigningAlgorithm="ES384", DurationSeconds=300)
        for kwargs in ({"Audience": ["https://good", "https://other"], "SigningAlgorithm": "ES384"},
                       {"Audience": ["https://good"], "SigningAlgorithm": "ES384", "DurationSeconds": 301},
                       {"Audience": ["https://good"], "SigningAlgorithm": "RS256"}):
            with pytest.raises(ClientError) as excinfo:
                sts.get_web_identity_token(**kwargs)
            assert error_of(excinfo)[:2] == (403, "AccessDenied"), kwargs


def test_tags_also_need_tag_get_web_identity_token(emulator: Any) -> None:
    with no_jwt_role_allowed(emulator.info,
                             {"Effect": "Allow", "Action": "sts:GetWebIdentityToken", "Resource": "*"}) as sts:
        assert sts.get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256")
        with pytest.raises(ClientError) as excinfo:
            sts.get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256", Tags=[{"Key": "k", "Value": "v"}])
        status, code, message = error_of(excinfo)
        assert (status, code) == (403, "AccessDenied") and "perform: sts:TagGetWebIdentityToken because" in message


def test_duration_beyond_the_calling_session_is_session_duration_escalation(emulator: Any) -> None:
    info = emulator.info
    sts = client(info, "sts", role_session(info, duration=900))

    assert sts.get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256", DurationSeconds=600)
    with pytest.raises(ClientError) as excinfo:
        sts.get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256", DurationSeconds=1200)

    assert error_of(excinfo) == (403, "SessionDurationEscalationException", aws_outbound.SESSION_ESCALATION_MESSAGE)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"DurationSeconds": 3601}, "durationSeconds"),
    ({"Audience": [f"a{i}" for i in range(11)]}, "audience"),
    ({"SigningAlgorithm": "HS256"}, "signingAlgorithm"),
])
def test_malformed_requests_are_validation_errors(emulator: Any, kwargs: dict[str, Any], field: str) -> None:
    request = {"Audience": ["aud"], "SigningAlgorithm": "RS256", **kwargs}
    sts = boto3.client("sts", endpoint_url=emulator.info["aws_endpoint"], region_name=REGION,
                       aws_access_key_id=emulator.info["aws_access_key_id"],
                       aws_secret_access_key=emulator.info["aws_secret_access_key"])

    with pytest.raises(ClientError) as excinfo:
        sts.get_web_identity_token(**request)

    status, code, message = error_of(excinfo)
    assert (status, code) == (400, "ValidationError") and f"at '{field}'" in message


def test_iam_enable_disable_and_info_with_aws_errors(emulator: Any) -> None:
    info = emulator.info
    iam = client(info, "iam")
    assert iam.get_outbound_web_identity_federation_info()["IssuerIdentifier"] == info["aws_issuer_url"]
    assert iam.get_outbound_web_identity_federation_info()["JwtVendingEnabled"] is True

    with pytest.raises(iam.exceptions.FeatureEnabledException) as enabled:
        iam.enable_outbound_web_identity_federation()
    assert error_of(enabled)[:2] == (409, "FeatureEnabled")

    iam.disable_outbound_web_identity_federation()
    with pytest.raises(iam.exceptions.FeatureDisabledException) as disabled:
        iam.get_outbound_web_identity_federation_info()
    assert error_of(disabled)[:2] == (404, "FeatureDisabled")
    with pytest.raises(iam.exceptions.FeatureDisabledException):
        iam.disable_outbound_web_identity_federation()

    assert iam.enable_outbound_web_identity_federation()["IssuerIdentifier"] == info["aws_issuer_url"]


def test_discovery_document_is_what_aws_publishes(emulator: Any) -> None:
    issuer = emulator.info["aws_issuer_url"]
    discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()

    assert discovery == {
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "jti", NAMESPACE],
        "id_token_signing_alg_values_supported": ["RS256", "ES384"], "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json", "subject_types_supported": ["public"]}
    assert issuer.startswith(("http://127.", "http://[::1]", "http://localhost"))


# -- the policy evaluator on its own: an oracle over sets -------------------------------------------------
@settings(derandomize=True, max_examples=300, deadline=None)
@given(allowed=st.sets(st.sampled_from("abcde"), min_size=1), requested=st.lists(st.sampled_from("abcde"),
       min_size=1, max_size=4), cap=st.integers(60, 3600), duration=st.integers(60, 3600),
       deny_c=st.booleans())
def test_policy_evaluation_matches_set_semantics(allowed: set[str], requested: list[str], cap: int, duration: int,
                                                 deny_c: bool) -> None:
    statements: list[dict[str, Any]] = [{"Effect": "Allow", "Action": "sts:GetWebIdentityToken", "Resource": "*",
                                         "Condition": {"ForAllValues:StringEquals":
                                                       {"sts:IdentityTokenAudience": sorted(allowed)},
                                                       "NumericLessThanEquals": {"sts:DurationSeconds": str(cap)}}}]
    if deny_c:
        statements.append({"Effect": "Deny", "Action": "sts:*", "Resource": "*",
                           "Condition": {"ForAnyValue:StringEquals": {"sts:IdentityTokenAudience": "c"}}})
    params = {f"Audience.member.{i + 1}": a for i, a in enumerate(requested)}
    params.update({"DurationSeconds": str(duration), "SigningAlgorithm": "RS256"})

    verdict = aws_outbound.evaluate([{"Statement": statements}], "sts:GetWebIdentityToken",
                                    aws_outbound.condition_context(params))

    if deny_c and "c" in requested:
        assert verdict == "deny"
    else:
        assert verdict == ("allow" if set(requested) <= allowed and duration <= cap else "implicit")


def test_identity_source_credentials_allow_a_jwt_as_long_as_their_advertised_lifetime() -> None:
    """The container-credentials fake advertises its TTL; the role session behind it lasts at least that long, so
    a JWT within the advertised lifetime is never a SessionDurationEscalationException (and beyond it, is)."""
    from airflow_provider_gcp_wif.testing import CloudEmulator

    with CloudEmulator(aws_credential_ttl=1800) as emulator:
        info = emulator.info
        served = requests.get(info["aws_identity_sources"]["ecs"]["endpoint"], timeout=10).json()
        sts = client(info, "sts", {"AccessKeyId": served["AccessKeyId"], "SecretAccessKey": served["SecretAccessKey"],
                                   "SessionToken": served["Token"]})

        assert sts.get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256", DurationSeconds=1700)
        with pytest.raises(ClientError) as excinfo:
            sts.get_web_identity_token(Audience=["aud"], SigningAlgorithm="RS256", DurationSeconds=1900)
        assert error_of(excinfo)[1] == "SessionDurationEscalationException"
