"""Emulated Google STS with OIDC providers: JWT subject tokens (AWS outbound identity federation's and our own)
are validated as real Google does (issuer, key, signature, audience, iat/exp with Google's 60 s skew, mapping,
127-byte subject, condition), with Google's real texts; google-auth's own identity_pool credentials do the
exchange for the end-to-end case."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wif_chain import CLOUD_PLATFORM, exchange, generate_access_token

from airflow_provider_gcp_wif.testing import EmulatorControlError, oidc

JWT = "urn:ietf:params:oauth:token-type:jwt"
REGION = "us-east-1"
ISSUER = "https://issuer.example.test"
SKEW = oidc.CLOCK_SKEW_SECONDS


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """A test-held OIDC key (RS256 or ES256) and its JWKS entry."""

    def __init__(self, algorithm: str, kid: str) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        self.algorithm, self.kid = algorithm, kid
        self.key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if algorithm == "RS256"
                    else ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        if self.algorithm == "RS256":
            return {"kty": "RSA", "kid": self.kid, "n": b64(numbers.n.to_bytes(256, "big")),
                    "e": b64(numbers.e.to_bytes(3, "big"))}
        return {"kty": "EC", "crv": "P-256", "kid": self.kid, "x": b64(numbers.x.to_bytes(32, "big")),
                "y": b64(numbers.y.to_bytes(32, "big"))}

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        header = {"alg": self.algorithm, "kid": kid or self.kid, "typ": "JWT"}
        signing_input = (b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())).encode()
        if self.algorithm == "RS256":
            signature = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input.decode() + "." + b64(signature)


SIGNERS = {"RS256": Signer("RS256", "rsa-1"), "ES256": Signer("ES256", "ec-1")}
IMPOSTOR = Signer("RS256", "rsa-1")  # another key under the same kid


def jwt_exchange(info: dict[str, Any], token: str, audience: str) -> requests.Response:
    return exchange(info, token, audience=audience, subject_token_type=JWT)


@pytest.fixture
def own_issuer(emulator: Any) -> str:
    """An OIDC provider ``own`` trusting the test-held keys (``jwks_json``), default audience."""
    emulator.control.set_provider(provider_id="own", attribute_mapping={"google.subject": "assertion.sub"},
                                  oidc={"issuer_uri": ISSUER, "allowed_audiences": [],
                                        "jwks_json": json.dumps({"keys": [s.jwk() for s in SIGNERS.values()]})})
    info = emulator.info
    return info["audience"].rsplit("/", 1)[0] + "/own"


def claims_at(now: float, audience: str, **changes: Any) -> dict[str, Any]:
    claims = {"iss": ISSUER, "sub": "workload-1", "aud": audience, "iat": int(now), "exp": int(now) + 300}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@settings(derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(iat_offset=st.integers(-4000, 200), lifetime=st.integers(1, 4000), algorithm=st.sampled_from(["RS256", "ES256"]))
def test_time_window_is_googles_60_second_skew(emulator: Any, own_issuer: str, iat_offset: int, lifetime: int,
                                               algorithm: str) -> None:
    """Oracle: accepted iff iat <= now + 60 and exp >= now - 60 (measured on real Google); else the stale text.
    A valid token's federated lifetime is min(exp - now, 3600)."""
    info = emulator.info
    now = emulator.control._call("GET", "clock")["now"]
    iat = int(now) + iat_offset
    claims = claims_at(now, "https:" + own_issuer, iat=iat, exp=iat + lifetime)

    response = jwt_exchange(info, SIGNERS[algorithm].sign(claims), own_issuer)

    if iat <= now + SKEW - 2 and iat + lifetime >= now - SKEW + 2:  # 2 s margin for the test's own runtime
        assert response.status_code == 200, response.text
        assert 0 < response.json()["expires_in"] <= min(max(iat + lifetime - now, 1), 3600) + 1
    elif iat > now + SKEW + 2 or iat + lifetime < now - SKEW - 2:
        assert response.json() == {"error": "invalid_grant",
                                   "error_description": f"ID Token issued at {iat} is stale to sign-in."}


@pytest.mark.parametrize(("mutation", "status", "error", "description"), [
    ("wrong_aud", 400, "invalid_grant", "The audience in ID Token [https://other] does not match the expected audience."),
    ("two_aud_one_ok", 200, None, None),
    ("default_aud_without_https", 200, None, None),
    ("wrong_iss", 400, "invalid_grant",
     f"The issuer in ID Token https://evil.test does not match the expected one in config: {ISSUER}"),
    ("no_iss", 400, "invalid_grant", f"The issuer in ID Token null does not match the expected one in config: {ISSUER}"),
    ("no_aud", 400, "invalid_grant", "The audience in ID Token [] does not match the expected audience."),
    ("no_iat", 400, "invalid_grant", "ID Token issued at null is stale to sign-in."),
    ("tampered", 400, "invalid_grant", "Unable to verify the ID Token signature."),
    ("impostor_key", 400, "invalid_grant", "Unable to verify the ID Token signature."),
    ("unknown_kid", 400, "invalid_grant", "Error connecting to the given credential's issuer."),
    ("long_subject", 400, "invalid_request", None),
    ("not_a_jwt", 400, "invalid_grant", oidc.UNPARSEABLE),
])
def test_refusals_carry_googles_texts(emulator: Any, own_issuer: str, mutation: str, status: int,
                                      error: str | None, description: str | None) -> None:
    info = emulator.info
    now = emulator.control._call("GET", "clock")["now"]
    aud = "https:" + own_issuer
    signer = SIGNERS["RS256"]
    changes: dict[str, Any] = {
        "wrong_aud": {"aud": "https://other"}, "two_aud_one_ok": {"aud": ["https://other", aud]},
        "wrong_iss": {"iss": "https://evil.test"}, "no_iss": {"iss": None}, "no_aud": {"aud": None},
        "no_iat": {"iat": None}, "long_subject": {"sub": "s" * 128}, "default_aud_without_https": {"aud": own_issuer},
    }.get(mutation, {})
    token = signer.sign(claims_at(now, aud, **changes))
    if mutation == "tampered":
        header, _payload, signature = token.split(".")
        token = ".".join([header, b64(json.dumps(claims_at(now, aud, sub="admin")).encode()), signature])
    elif mutation == "impostor_key":
        token = IMPOSTOR.sign(claims_at(now, aud))
    elif mutation == "unknown_kid":
        token = signer.sign(claims_at(now, aud), kid="rotated-away")
    elif mutation == "not_a_jwt":
        token = "not-a-jwt"

    response = jwt_exchange(info, token, own_issuer)

    assert response.status_code == status, response.text
    if error:
        assert response.json()["error"] == error
    if description:
        assert response.json()["error_description"] == description
    if mutation == "long_subject":
        assert "127" in response.json()["error_description"]


def test_allowed_audiences_replace_the_default(emulator: Any, own_issuer: str) -> None:
    info = emulator.info
    now = emulator.control._call("GET", "clock")["now"]
    emulator.control.set_provider(provider_id="own", oidc={"allowed_audiences": ["my-aud"]})

    assert jwt_exchange(info, SIGNERS["ES256"].sign(claims_at(now, "my-aud")), own_issuer).status_code == 200
    refused = jwt_exchange(info, SIGNERS["ES256"].sign(claims_at(now, "https:" + own_issuer)), own_issuer)
    assert refused.json()["error_description"].startswith("The audience in ID Token [https://iam.googleapis.com/")


def test_aws_jwt_token_type_on_an_aws_provider_and_sigv4_token_on_an_oidc_provider_are_refused(
        emulator: Any, own_issuer: str) -> None:
    info = emulator.info
    assert jwt_exchange(info, "a.b.c", info["audience"]).json() == {
        "error": "invalid_request", "error_description": 'Invalid value for "subject_token_type".'}
    assert exchange(info, "{}", audience=own_issuer).json() == {
        "error": "invalid_request", "error_description": 'Invalid value for "subject_token_type".'}


@pytest.mark.parametrize(("oidc_config", "text"), [
    ({"issuer_uri": "http://issuer.example.test"}, oidc.ISSUER_NOT_HTTPS),
    ({"issuer_uri": ISSUER, "allowed_audiences": [f"a{i}" for i in range(11)]}, "at most 10 audiences"),
    ({"issuer_uri": ISSUER, "jwks_json": json.dumps({"keys": [{"kty": "EC", "crv": "P-384", "kid": "k", "x": "a",
                                                               "y": "b"}]})}, oidc.JWKS_CURVE_UNSUPPORTED),
])
def test_provider_configuration_is_checked_like_gcloud(emulator: Any, oidc_config: dict[str, Any], text: str) -> None:
    with pytest.raises(EmulatorControlError, match=text.split(".")[0]):
        emulator.control.set_provider(provider_id="bad", oidc=oidc_config)


# -- end to end with the emulated AWS issuer --------------------------------------------------------------
def role_sts(info: dict[str, Any]) -> Any:
    user = boto3.client("sts", endpoint_url=info["aws_endpoint"], region_name=REGION,
                        aws_access_key_id=info["aws_access_key_id"],
                        aws_secret_access_key=info["aws_secret_access_key"])
    role = user.assume_role(RoleArn=info["role_arn"], RoleSessionName="airflow")["Credentials"]
    return boto3.client("sts", endpoint_url=info["aws_endpoint"], region_name=REGION,
                        aws_access_key_id=role["AccessKeyId"], aws_secret_access_key=role["SecretAccessKey"],
                        aws_session_token=role["SessionToken"])


def test_aws_jwt_through_google_auth_identity_pool_and_impersonation(emulator: Any) -> None:
    """One call trusts the emulated AWS issuer; google-auth's identity_pool credentials with a subject token
    supplier exchange an AWS-minted JWT; the fixture's role binding lets the principal impersonate."""
    from google.auth import identity_pool
    from google.auth.transport.requests import Request

    info = emulator.info
    audience = emulator.control.trust_aws_issuer()
    sts = role_sts(info)

    class AwsJwtSupplier(identity_pool.SubjectTokenSupplier):
        def get_subject_token(self, context: Any, request: Any) -> str:
            return str(sts.get_web_identity_token(Audience=["https:" + audience],
                                                  SigningAlgorithm="RS256")["WebIdentityToken"])

    credentials = identity_pool.Credentials(audience=audience, subject_token_type=JWT,
                                            token_url=info["sts_endpoint"], subject_token_supplier=AwsJwtSupplier(),
                                            scopes=[CLOUD_PLATFORM])
    credentials.refresh(Request())

    log = emulator.control.requests("sts")[-1]
    assert log["principal"].endswith("/subject/arn:aws:iam::123456789012:role/wif-role")
    assert generate_access_token(info, credentials.token, info["service_account"]).status_code == 200


def test_aws_es384_jwt_finds_no_key_google_accepts(emulator: Any) -> None:
    """Google takes RSA and EC P-256 keys only: an ES384 JWT from AWS cannot be verified (use RS256)."""
    info = emulator.info
    audience = emulator.control.trust_aws_issuer()
    token = role_sts(info).get_web_identity_token(Audience=["https:" + audience],
                                                  SigningAlgorithm="ES384")["WebIdentityToken"]

    assert jwt_exchange(info, token, audience).json() == {"error": "invalid_grant",
                                                          "error_description": oidc.ISSUER_UNREACHABLE}


def test_aws_jwt_expired_on_the_emulator_clock_and_condition_pinning_another_account(emulator: Any) -> None:
    info = emulator.info
    audience = emulator.control.trust_aws_issuer()
    token = role_sts(info).get_web_identity_token(Audience=["https:" + audience], SigningAlgorithm="RS256",
                                                  DurationSeconds=60)["WebIdentityToken"]
    emulator.control.advance_clock(60 + SKEW + 5)
    assert jwt_exchange(info, token, audience).json()["error_description"].endswith("is stale to sign-in.")

    emulator.control.set_clock_offset(0)
    emulator.control.trust_aws_issuer(attribute_condition="assertion['https://sts.amazonaws.com/'].aws_account"
                                                          " == '999988887777'")
    assert jwt_exchange(info, token, audience).json() == {
        "error": "unauthorized_client", "error_description": "The given credential is rejected by the attribute "
                                                             "condition."}


def test_jwt_of_the_untrusted_account_is_an_issuer_mismatch(emulator: Any) -> None:
    info = emulator.info
    audience = emulator.control.trust_aws_issuer()
    emulator.control.set_aws_outbound_federation(True, info["untrusted_aws_account_id"])
    untrusted = boto3.client("sts", endpoint_url=info["aws_endpoint"], region_name=REGION,
                             aws_access_key_id=info["untrusted_aws_access_key_id"],
                             aws_secret_access_key=info["untrusted_aws_secret_access_key"])
    token = untrusted.get_web_identity_token(Audience=["https:" + audience], SigningAlgorithm="RS256")

    description = jwt_exchange(info, token["WebIdentityToken"], audience).json()["error_description"]

    assert description == (f"The issuer in ID Token {emulator.control.aws_issuer(info['untrusted_aws_account_id'])} "
                           f"does not match the expected one in config: {info['aws_issuer_url']}")


def test_the_emulator_starts_with_an_aws_jwt_provider_that_reset_keeps(emulator: Any) -> None:
    """No call needed: ``info["jwt_audience"]`` names an OIDC provider trusting the emulated AWS issuer, in every
    test (the per-test ``reset()`` restores it), and its principal may impersonate the fixture service account."""
    info = emulator.info
    emulator.control.set_provider(provider_id=info["jwt_provider_id"], disabled=True)
    emulator.control.reset()
    token = role_sts(info).get_web_identity_token(Audience=["https:" + info["jwt_audience"]],
                                                  SigningAlgorithm="RS256")["WebIdentityToken"]

    response = jwt_exchange(info, token, info["jwt_audience"])

    assert response.status_code == 200, response.text
    assert generate_access_token(info, response.json()["access_token"], info["service_account"]).status_code == 200
    assert emulator.control.get_config()["pools"][info["pool_id"]]["providers"][info["jwt_provider_id"]]["oidc"][
        "issuer_uri"] == info["aws_issuer_url"]


def test_trust_aws_issuer_replaces_the_mapping(emulator: Any) -> None:
    info = emulator.info
    audience = emulator.control.trust_aws_issuer(attribute_mapping={"google.subject": "assertion.jti"},
                                                 attribute_condition=None)
    token = role_sts(info).get_web_identity_token(Audience=["https:" + audience], SigningAlgorithm="RS256")

    assert jwt_exchange(info, token["WebIdentityToken"], audience).status_code == 200
    provider = emulator.control.get_config()["pools"][info["pool_id"]]["providers"][info["jwt_provider_id"]]
    assert provider["attribute_mapping"] == {"google.subject": "assertion.jti"}
    assert emulator.control.requests("sts")[-1]["principal"].rsplit("/", 1)[1] == json.loads(
        base64.urlsafe_b64decode(token["WebIdentityToken"].split(".")[1] + "=="))["jti"]


def test_both_clouds_keep_one_clock_a_jwt_minted_after_advance_clock_is_fresh(emulator: Any) -> None:
    """advance_clock() moves the emulated AWS issuer's clock too: a JWT minted afterwards is not stale, while one
    minted before is (as on one real clock)."""
    info = emulator.info
    sts = role_sts(info)
    audience = ["https:" + info["jwt_audience"]]
    before = sts.get_web_identity_token(Audience=audience, SigningAlgorithm="RS256")["WebIdentityToken"]

    emulator.control.advance_clock(7200)
    after = sts.get_web_identity_token(Audience=audience, SigningAlgorithm="RS256")

    now = emulator.control._call("GET", "clock")["now"]
    claims = json.loads(base64.urlsafe_b64decode(after["WebIdentityToken"].split(".")[1] + "=="))
    assert abs(claims["iat"] - now) < 5 and abs(after["Expiration"].timestamp() - (now + 300)) < 5
    assert jwt_exchange(info, after["WebIdentityToken"], info["jwt_audience"]).status_code == 200
    assert jwt_exchange(info, before, info["jwt_audience"]).json()["error_description"].endswith("stale to sign-in.")


def test_http_issuer_is_taken_only_on_loopback_or_the_emulated_aws_host() -> None:
    """With allow_non_loopback the emulated AWS issuer is http on a non-loopback host: the emulator trusts that
    host (and only it) besides loopback; any other http issuer is refused as gcloud refuses it."""
    oidc.validate_config({"issuer_uri": "http://127.0.0.1:1/_issuer/x"}, "p")
    with pytest.raises(ValueError, match="The scheme must be https"):
        oidc.validate_config({"issuer_uri": "http://198.51.100.7:1/_issuer/x"}, "p")
    oidc.trust_emulated_issuer_host("198.51.100.7")  # what CloudEmulator does for its AWS host
    oidc.validate_config({"issuer_uri": "http://198.51.100.7:1/_issuer/x"}, "p")
    with pytest.raises(ValueError, match="The scheme must be https"):
        oidc.validate_config({"issuer_uri": "http://198.51.100.8:1/_issuer/x"}, "p")
