"""At DEBUG, botocore logs the AWS requests the provider makes (``botocore.auth``: the SigV4 signature;
``botocore.endpoint``: the prepared request with its ``Authorization`` header and ``X-Amz-Date``, and the
parameters). A logged request whose signature survives can be replayed to AWS STS for ~15 minutes: with long-term
IAM-user keys there is no session token to mask, and a replayed ``GetWebIdentityToken`` mints a fresh JWT for the
provider's audience, a replayed ``AssumeRole`` the role's credentials (issue #20 item 4).

Oracle, for both routes (``sigv4``, ``federation: jwt``) with temporary (an assumed role) and long-term (an IAM
user's) keys: every logger at DEBUG, each record rendered through Airflow's REAL secrets masker (hearing only what
the provider announces) when it is emitted. The judge is signature-checking moto: every request botocore sent is
recorded on the wire (botocore's own ``Endpoint._send``, wrapped to observe) and replayed as sent, which AWS accepts,
then replayed with its signature swapped for each signature-shaped value (64 hex digits) in the rendered logs, which
it must refuse. No token or JWT appears in the rendered logs either, nor the AWS secret key or session token, not
even in botocore's record of the AssumeRole answer (``botocore.parsers`` prints its body while parsing it, before
anyone could announce the role's credentials).
"""

from __future__ import annotations

import json
import logging
import re

import pytest
import requests

from airflow_provider_gcp_wif import masking

from .test_subject_token_masking import airflows_masker
from .token_oracle import known_tokens, tokens_in

pytestmark = pytest.mark.usefixtures("aws_env")

HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
SIGNATURE = re.compile(r"Signature=([0-9a-f]{64})")


class _RenderedThroughTheMasker(logging.Handler):
    """Every record of every logger, as Airflow's masker renders it at the moment it is emitted."""

    def __init__(self, masker) -> None:
        super().__init__(logging.DEBUG)
        self.masker = masker
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.masker.redact(f"{record.name} {self.format(record)} {record.__dict__!r}"))


@pytest.fixture
def rendered_logs(monkeypatch):
    masker = airflows_masker()
    monkeypatch.setattr(masking, "_listeners", [masker.add_mask])
    monkeypatch.setattr(masking, "_announced", set())
    handler = _RenderedThroughTheMasker(masker)
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in ("", "botocore", "urllib3", "google")}
    root.addHandler(handler)
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler.texts
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture
def sent_requests(monkeypatch):
    """(method, url, headers, body) of every request botocore put on the wire."""
    from botocore.endpoint import Endpoint

    sent: list[tuple[str, str, dict[str, str], bytes]] = []
    original = Endpoint._send

    def observed(self, request):
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        sent.append((request.method, request.url, headers, body))
        return original(self, request)

    monkeypatch.setattr(Endpoint, "_send", observed)
    return sent


def replay(request: tuple[str, str, dict[str, str], bytes], signature: str | None = None) -> requests.Response:
    method, url, headers, body = request
    headers = dict(headers)
    if signature is not None:
        headers["Authorization"] = SIGNATURE.sub(f"Signature={signature}", headers["Authorization"])
    return requests.request(method, url, headers=headers, data=body, timeout=30)


def action_of(request: tuple[str, str, dict[str, str], bytes]) -> str:
    found = re.search(r"Action=(\w+)", request[1] + "&" + request[3].decode(errors="replace"))
    return found.group(1) if found else "?"


@pytest.mark.parametrize("keys", ["temporary", "long-term"])
@pytest.mark.parametrize("federation", ["sigv4", "jwt"])
def test_no_logged_aws_request_can_be_replayed(emulator, aws_env, settings_for, jwt_settings, role_supplier,
                                               user_supplier, rendered_logs, sent_requests, federation, keys):
    from airflow_provider_gcp_wif.chain import web_identity_token_supplier
    from airflow_provider_gcp_wif.credentials import get_credentials
    from airflow_provider_gcp_wif.errors import WifExchangeError
    from airflow_provider_gcp_wif.transport import exchange_transport

    supplier = role_supplier() if keys == "temporary" else user_supplier()
    settings = jwt_settings if federation == "jwt" else settings_for()
    secrets: dict[str, str] = {}
    try:
        get_credentials(settings, supplier).refresh(exchange_transport())
    except WifExchangeError:
        # The fixture binds the role, not the user: Google refuses the user's identity after the AWS side is done.
        assert keys == "long-term"
    if federation == "jwt":
        secrets["JWT"] = web_identity_token_supplier(settings, supplier)._token or "-"
    aws = supplier.get_aws_security_credentials(None, None)
    secrets["secret key"] = aws.secret_access_key
    secrets["root secret key"] = aws_env["aws_secret_access_key"]
    if aws.session_token:
        secrets["session token"] = aws.session_token
    if "JWT" in secrets:
        secrets.update(zip(("JWT payload", "JWT signature"), secrets["JWT"].split(".")[1:], strict=True))

    logged = "\n".join(rendered_logs)
    actions = [action_of(r) for r in sent_requests]
    expected = {("sigv4", "temporary"): {"AssumeRole"}, ("sigv4", "long-term"): set(),
                ("jwt", "temporary"): {"AssumeRole", "GetWebIdentityToken"},
                ("jwt", "long-term"): {"GetWebIdentityToken"}}[federation, keys]
    assert expected <= set(actions), actions
    if sent_requests:
        assert "Sending http request" in logged and "Authorization" in logged, "botocore's wire logging was on"

    candidates = sorted(set(HEX64.findall(logged)))
    for request in sent_requests:
        if action_of(request) not in expected:
            continue
        assert replay(request).status_code == 200, f"the judge: {action_of(request)} as sent is accepted"
        accepted = [value[:8] for value in candidates if replay(request, value).status_code == 200]
        assert not accepted, f"{action_of(request)} replayed with a logged value: {accepted}"
    if "AssumeRole" in expected:
        assert any(t.startswith("botocore.parsers ") and "<AssumeRoleResponse" in t for t in rendered_logs), (
            "botocore logged the AssumeRole answer")
    found = [name for name, value in secrets.items() if value and value in logged]
    found += tokens_in(logged, known_tokens(emulator))
    assert not found, found


def test_the_signature_of_our_sts_request_is_announced_before_botocore_logs_the_request(
        emulator, jwt_settings, user_supplier, sent_requests, monkeypatch):
    """The masker hears each signature of our own STS client once signed, before ``Sending http request`` (a
    ``request-created`` handler after the signer), for whatever renders it besides botocore's filtered loggers."""
    from airflow_provider_gcp_wif.chain import web_identity_token_supplier

    heard: list[str] = []
    sending: list[list[str]] = []

    class Witness(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("Sending http request"):
                sending.append(list(heard))

    monkeypatch.setattr(masking, "_listeners", [heard.append])
    monkeypatch.setattr(masking, "_announced", set())
    witness = Witness(logging.DEBUG)
    endpoint = logging.getLogger("botocore.endpoint")
    saved = endpoint.level
    endpoint.addHandler(witness)
    endpoint.setLevel(logging.DEBUG)
    try:
        web_identity_token_supplier(jwt_settings, user_supplier()).get_subject_token(None, None)
    finally:
        endpoint.removeHandler(witness)
        endpoint.setLevel(saved)
    signatures = [SIGNATURE.search(r[2]["Authorization"]).group(1) for r in sent_requests
                  if action_of(r) == "GetWebIdentityToken"]
    assert signatures and set(signatures) <= set(heard)
    assert len(sending) == len(signatures), "botocore logged each request"
    assert all(signature in heard_then for signature, heard_then in zip(signatures, sending, strict=True)), (
        "announced before botocore logged the request")


@pytest.mark.parametrize("text", [
    "Signature:\n{sig}",
    "<AWSPreparedRequest stream_output=False, method=POST, url=https://sts.eu-west-1.amazonaws.com/, headers={{"
    "'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/eu-west-1/sts/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature={sig}', 'X-Amz-Date': b'20260101T000000Z'}}>",
    "https://bucket.s3.amazonaws.com/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={sig}&X-Amz-Expires=60",
])
def test_botocore_signing_records_keep_everything_but_the_signature(text):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=50, derandomize=True, deadline=None)
    @given(sig=st.text("0123456789abcdef", min_size=64, max_size=64))
    def check(sig: str) -> None:
        record = logging.LogRecord("botocore.auth", logging.DEBUG, __file__, 1, "%s", (text.format(sig=sig),), None)
        assert masking.BotocoreSignatureRedactor().filter(record)
        assert record.getMessage() == text.format(sig="***")

    check()


_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_ROLE_USER = {"AssumedRoleId": "AROAEXAMPLE:s", "Arn": "arn:aws:sts::123456789012:assumed-role/r/s"}

#: Answers that carry AWS credentials, in the wire forms botocore prints, as a function of the secret key and the
#: token (session token, metadata ``Token``, JWT) they carry. Everything but those two is what must survive.
CREDENTIAL_ANSWERS = {
    "AssumeRole, query XML": lambda key, token: (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>\n  <Credentials>'
        f"<AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>{key}</SecretAccessKey>"
        f"<SessionToken>{token}</SessionToken><Expiration>2026-01-01T00:00:00Z</Expiration></Credentials>"
        "<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn></AssumedRoleUser>"
        "</AssumeRoleResult></AssumeRoleResponse>"),
    "AssumeRole, JSON": lambda key, token: json.dumps({"Credentials": {
        "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": key, "SessionToken": token, "Expiration": 1.7e9},
        "AssumedRoleUser": _ROLE_USER}),
    "container / instance-metadata credentials": lambda key, token: json.dumps({
        "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": key, "Token": token,
        "Expiration": "2026-01-01T00:00:00Z"}, indent=2),
    "SSO role credentials": lambda key, token: json.dumps({"roleCredentials": {
        "accessKeyId": "ASIAEXAMPLE", "secretAccessKey": key, "sessionToken": token, "expiration": 1767225600000}}),
    "Cognito identity credentials": lambda key, token: json.dumps({"IdentityId": "eu-west-1:abc", "Credentials": {
        "AccessKeyId": "ASIAEXAMPLE", "SecretKey": key, "SessionToken": token, "Expiration": 1.7e9}}),
    "GetWebIdentityToken, query XML": lambda key, token: (
        f"<GetWebIdentityTokenResponse><GetWebIdentityTokenResult><WebIdentityToken>{token}</WebIdentityToken>"
        f"<Expiration>2026-01-01T00:00:00Z</Expiration></GetWebIdentityTokenResult></GetWebIdentityTokenResponse>"),
    "an answer quoted inside a JSON string": lambda key, token: json.dumps(json.dumps({
        "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": key, "Token": token})),
    "SSO-OIDC CreateToken": lambda key, token: json.dumps({
        "accessToken": token, "tokenType": "Bearer", "expiresIn": 28800, "refreshToken": key}),
    "SSO-OIDC RegisterClient": lambda key, token: json.dumps({
        "clientId": "c1", "clientSecret": key, "clientIdIssuedAt": 1767225600, "clientSecretExpiresAt": 1774915200}),
}


def _wire_filtered(body: str | bytes) -> str:
    record = logging.LogRecord("botocore.parsers", logging.DEBUG, __file__, 1, "Response body:\n%r", (body,), None)
    assert masking.BotocoreWireSecretRedactor().filter(record)
    return record.getMessage()


@pytest.mark.parametrize("answer", sorted(CREDENTIAL_ANSWERS))
def test_botocore_credential_answers_are_logged_without_their_secrets(answer):
    """Property: whatever the secret key and token, in each wire form, as bytes (``Response body: b'...'``) or text,
    the record reads exactly as botocore wrote it with those two values replaced by ``***``: the access key id,
    expiry and role stay."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, derandomize=True, deadline=None)
    @given(key=st.text(_BASE64, min_size=1, max_size=60), token=st.text(_BASE64, min_size=1, max_size=600),
           as_bytes=st.booleans())
    def check(key: str, token: str, as_bytes: bool) -> None:
        body, redacted = CREDENTIAL_ANSWERS[answer](key, token), CREDENTIAL_ANSWERS[answer]("***", "***")
        shown = _wire_filtered(body.encode() if as_bytes else body)
        assert shown == f"Response body:\n{(redacted.encode() if as_bytes else redacted)!r}"

    check()


_AGENT = "Boto3/1.44.18 md/Botocore#1.44.18 ua/2.1 os/linux lang/python#3.11.7 Botocore/1.44.18"
_CONTEXT = "'context': {'client_region': 'eu-west-1', 'has_streaming_input': False, 'auth_type': 'none'}"


def _making_request(operation: str, request: dict) -> str:
    """botocore.endpoint's record of a request about to be made (``request`` is its request dict; its repr is
    what botocore prints)."""
    return f"Making request for OperationModel(name={operation}) with params: {str(request)[:-1]}, {_CONTEXT}}}"


def _sending(url: str, headers: dict) -> str:
    """botocore.endpoint's record of a prepared request (header values as bytes, but Content-Length)."""
    return f"Sending http request: <AWSPreparedRequest stream_output=False, method=POST, url={url}, headers={headers}>"


#: Records of AWS *requests* that carry a credential (botocore.endpoint's request dicts and prepared requests,
#: botocore.auth's canonical requests), as a function of that credential: the logger, the record's text.
CREDENTIAL_REQUESTS = {
    "AssumeRoleWithSAML, its assertion": lambda secret: ("botocore.endpoint", _making_request("AssumeRoleWithSAML", {
        "url_path": "/", "query_string": "", "method": "POST", "headers": {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "User-Agent": _AGENT},
        "body": {"Action": "AssumeRoleWithSAML", "Version": "2011-06-15", "RoleArn": "arn:aws:iam::123456789012:role/r",
                 "PrincipalArn": "arn:aws:iam::123456789012:saml-provider/p", "SAMLAssertion": secret},
        "url": "https://sts.amazonaws.com/"})),
    "SSO GetRoleCredentials, its bearer token": lambda secret: ("botocore.endpoint", _making_request(
        "GetRoleCredentials", {"url_path": "/federation/credentials", "query_string": {
            "role_name": "r", "account_id": "123456789012"}, "method": "GET",
            "headers": {"x-amz-sso_bearer_token": secret, "User-Agent": _AGENT}, "body": b"",
            "url": "https://portal.sso.eu-west-1.amazonaws.com/federation/credentials"})),
    "SSO GetRoleCredentials, prepared": lambda secret: ("botocore.endpoint", _sending(
        "https://portal.sso.eu-west-1.amazonaws.com/federation/credentials?role_name=r&account_id=123456789012",
        {"x-amz-sso_bearer_token": secret.encode(), "User-Agent": _AGENT.encode(), "amz-sdk-request": b"attempt=1"})),
    "SSO-OIDC CreateToken, its client secret and refresh token": lambda secret: ("botocore.endpoint", _making_request(
        "CreateToken", {"url_path": "/token", "query_string": {}, "method": "POST", "headers": {
            "Content-Type": "application/json", "User-Agent": _AGENT}, "body": json.dumps({
                "clientId": "c1", "clientSecret": secret, "grantType": "refresh_token",
                "refreshToken": secret[::-1]}).encode(), "url": "https://oidc.eu-west-1.amazonaws.com/token"})),
    "a signed request's session token, prepared": lambda secret: ("botocore.endpoint", _sending(
        "https://sts.eu-west-1.amazonaws.com/", {
            "Content-Type": b"application/x-www-form-urlencoded; charset=utf-8", "X-Amz-Date": b"20260101T000000Z",
            "X-Amz-Security-Token": secret.encode(), "Authorization": b"AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/"
            b"20260101/eu-west-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "
            b"Signature=***", "Content-Length": "43"})),
    "a signed request's session token, canonical request": lambda secret: ("botocore.auth", (
        "CanonicalRequest:\nPOST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\n"
        f"host:sts.eu-west-1.amazonaws.com\nx-amz-date:20260101T000000Z\nx-amz-security-token:{secret}\n\n"
        "content-type;host;x-amz-date;x-amz-security-token\n"
        "ab821ae955788b0e33ebd34c208442ccfc2d406e2edc5e7a39bd6458fbb4f843")),
}


@pytest.mark.parametrize("request_record", sorted(CREDENTIAL_REQUESTS))
def test_botocore_credential_requests_are_logged_without_their_secrets(request_record):
    """Property: whatever the SAML assertion, SSO bearer token, SSO-OIDC client secret and refresh token, or
    session token a request carries, botocore's record of it reads exactly as written with those values as ``***``
    (the request dict's repr, the prepared request's bytes headers, the canonical request's header line)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, derandomize=True, deadline=None)
    @given(secret=st.text(_BASE64, min_size=1, max_size=600))
    def check(secret: str) -> None:
        logger, text = CREDENTIAL_REQUESTS[request_record](secret)
        _, redacted = CREDENTIAL_REQUESTS[request_record]("***")
        record = logging.LogRecord(logger, logging.DEBUG, __file__, 1, "%s", (text,), None)
        assert masking.BotocoreWireSecretRedactor().filter(record)
        assert record.getMessage() == redacted
        assert logger in masking.BOTOCORE_WIRE_LOGGERS

    check()


@pytest.mark.parametrize("body", [
    b"<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/x</Arn>"
    b"<UserId>AIDAEXAMPLE</UserId></GetCallerIdentityResult></GetCallerIdentityResponse>",
    b'{"AccessKeyMetadata": [{"AccessKeyId": "AKIAEXAMPLE", "Status": "Active"}], "NextToken": "bmV4dA=="}',
    b"<ListRolesResponse><ListRolesResult><IsTruncated>true</IsTruncated><Marker>bWFyaw==</Marker>"
    b"</ListRolesResult></ListRolesResponse>",
    b'{"ClientToken": "c1", "TokenCode": "123456", "SessionTokenExpiry": "2026-01-01T00:00:00Z"}',
])
def test_botocore_answers_without_credentials_are_logged_as_botocore_wrote_them(body):
    assert _wire_filtered(body) == f"Response body:\n{body!r}"
