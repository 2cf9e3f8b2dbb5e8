"""Emulated AWS: moto in server mode, with SigV4 signatures really verified.

moto runs in a child process (``python -m airflow_provider_gcp_wif.testing.aws``). Keeping it out of the
caller's interpreter matters: moto's backends and its ``INITIAL_NO_AUTH_ACTION_COUNT`` switch are process
globals, and a test suite that also uses ``moto.mock_aws`` (which resets every backend and expects auth off)
would otherwise wipe the fixture identities or be broken by IAM access control.

The child:

* turns IAM access control on (``moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0``) after seeding the
  fixture identities through moto's own API, so every later request has its signature verified;
* corrects moto 5.x's payload hash for a ``POST`` whose parameters are all in the query string and whose body
  is empty (the signed ``GetCallerIdentity`` Google replays): moto hashed the parsed query as if it were a form
  body and reported ``SignatureDoesNotMatch`` for a correct signature. The correction signs the empty body that
  was actually sent; verification itself is untouched, so a wrong secret or a changed signed header still fails;
* answers requests signed with an access key the test has "expired" with AWS's ``ExpiredToken`` error;
* lets ``AssumeRoleWithWebIdentity`` / ``AssumeRoleWithSAML`` through *unsigned*, as real AWS does (they are
  authenticated by the token they carry, not by SigV4): moto 5.x ran its SigV4 check on them like on any other
  action and failed with HTTP 500 on the missing ``Authorization`` header. Only those two STS actions, and only
  when unsigned, skip the check; everything else stays signature-checked, and any other unsigned request is
  answered ``403 MissingAuthenticationToken`` as AWS does (moto failed with HTTP 500 there too).

The parent side (:class:`AwsEmulator`) starts and stops the child, exposes the fixture identities and replays
serialized subject tokens to it with exactly the serialized headers (``host`` preserved).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

from .aws_outbound import ISSUER_PREFIX
from .bind import ALLOW_FLAG, NonLoopbackHostError, require_loopback

DEFAULT_REGION = "us-east-1"
TRUSTED_ACCOUNT_ID = "123456789012"
UNTRUSTED_ACCOUNT_ID = "999988887777"
USER_NAME = "wif-user"
ROLE_NAME = "wif-role"
LONG_ROLE_NAME = "wif-role-with-a-very-long-name-for-the-127-byte-subject-limit"
UNTRUSTED_USER_NAME = "untrusted-user"
UNTRUSTED_ROLE_NAME = "wif-role"
NO_JWT_ROLE_NAME = "wif-role-without-web-identity-token"  # may not call sts:GetWebIdentityToken
NO_JWT_ROLE_NAMES = frozenset({NO_JWT_ROLE_NAME})
# Fixture roles may get a web identity token for any audience, for at most an hour, either algorithm (AWS's
# condition keys: a narrower policy is the user's / setup's business, and tests write their own).
_WEB_IDENTITY_TOKEN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["sts:GetWebIdentityToken", "sts:TagGetWebIdentityToken"],
                   "Resource": "*",
                   "Condition": {"NumericLessThanEquals": {"sts:DurationSeconds": "3600"}}}],
}

_HARNESS_PREFIX = "/_harness/"
_EXPIRED_TOKEN_XML = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    "<Error><Type>Sender</Type><Code>ExpiredToken</Code>"
    "<Message>The security token included in the request is expired</Message></Error>"
    "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
)


@dataclass(frozen=True)
class AwsIdentity:
    """Static access keys of a fixture IAM user."""

    account_id: str
    user_name: str
    access_key_id: str
    secret_access_key: str

    @property
    def user_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{self.user_name}"


class AwsEmulator:
    """Parent-side handle on the moto child process."""

    def __init__(self, host: str = "127.0.0.1", region: str = DEFAULT_REGION, *,
                 allow_non_loopback: bool = False) -> None:
        require_loopback(host, allow_non_loopback)
        self.allow_non_loopback = allow_non_loopback
        self.host = host
        self.region = region
        self.endpoint: str = ""
        self.trusted: AwsIdentity | None = None
        self.untrusted: AwsIdentity | None = None
        self._process: subprocess.Popen[str] | None = None
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> AwsEmulator:
        env = dict(os.environ)
        env.pop("MOTO_ACCOUNT_ID", None)  # would pin every request to one account
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "inf"  # the child switches auth on itself after seeding
        self._process = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_gcp_wif.testing.aws", "--host", self.host,
             "--region", self.region, *([ALLOW_FLAG] if self.allow_non_loopback else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            env=env,
        )
        ready: dict[str, Any] = {}
        error: list[BaseException] = []

        def read_ready_line() -> None:
            try:
                assert self._process is not None and self._process.stdout is not None
                line = self._process.stdout.readline()
                ready.update(json.loads(line))
            except BaseException as exc:  # noqa: BLE001 - reported below
                error.append(exc)

        reader = threading.Thread(target=read_ready_line, daemon=True)
        reader.start()
        reader.join(timeout)
        if not ready:
            self.stop()
            raise RuntimeError(f"emulated AWS (moto) did not start: {error or 'timeout'}")
        self._port = int(ready["port"])
        self.endpoint = f"http://{self.host}:{self._port}"
        self.trusted = AwsIdentity(**ready["trusted"])
        self.untrusted = AwsIdentity(**ready["untrusted"])
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin:
                process.stdin.close()  # the child exits when its stdin closes
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            if process.stdout:
                process.stdout.close()

    # -- controls ----------------------------------------------------------------------------------------
    def expire_access_key(self, access_key_id: str) -> None:
        """From now on, requests signed with ``access_key_id`` get AWS's ``ExpiredToken`` error."""
        self._harness_call("expire", {"access_key_id": access_key_id})

    def clear_expired(self) -> None:
        self._harness_call("clear", {})

    # -- outbound identity federation (GetWebIdentityToken) -----------------------------------------------
    trusted_account_id = TRUSTED_ACCOUNT_ID

    def issuer_url(self, account_id: str = TRUSTED_ACCOUNT_ID) -> str:
        """The account's outbound identity federation issuer (``iss`` of its JWTs), served on loopback."""
        return str(self._harness_call("issuer", {"account_id": account_id})["issuer"])

    def outbound_federation_enabled(self, account_id: str = TRUSTED_ACCOUNT_ID) -> bool:
        return bool(self._harness_call("issuer", {"account_id": account_id})["enabled"])

    def enable_outbound_federation(self, account_id: str = TRUSTED_ACCOUNT_ID) -> None:
        """As ``aws iam enable-outbound-web-identity-federation`` in that account (no error if already on)."""
        self._harness_call("outbound", {"account_id": account_id, "enabled": True})

    def disable_outbound_federation(self, account_id: str = TRUSTED_ACCOUNT_ID) -> None:
        self._harness_call("outbound", {"account_id": account_id, "enabled": False})

    def set_clock_offset(self, seconds: float) -> None:
        """Follow the Google emulator's clock: JWTs (``iat``/``exp``/``Expiration``) are issued at real time +
        ``seconds``, so both emulated clouds keep one clock (moto's own sessions keep real time)."""
        self._harness_call("clock", {"offset_seconds": seconds})

    def reset_outbound_federation(self) -> None:
        """The fixture's state: enabled in the trusted account, disabled in the untrusted one."""
        self.enable_outbound_federation(TRUSTED_ACCOUNT_ID)
        self.disable_outbound_federation(UNTRUSTED_ACCOUNT_ID)

    def _harness_call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        conn = http.client.HTTPConnection(self.host, self._port, timeout=10)
        try:
            conn.request("POST", _HARNESS_PREFIX + action, body=json.dumps(payload),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"moto harness {action} failed: HTTP {response.status}")
            answer = json.loads(body or b"{}")
            return answer if isinstance(answer, dict) else {}
        finally:
            conn.close()

    def replay(self, method: str, url: str, headers: list[tuple[str, str]], timeout: float = 30.0
               ) -> tuple[int, bytes]:
        """Send a serialized AWS request to emulated AWS exactly as serialized.

        The real AWS host in ``url`` is mapped to the moto endpoint; the ``host`` header (part of the signature)
        is sent unchanged, and no header is added except ``Content-Length: 0`` for the empty body.
        """
        parsed = urllib.parse.urlsplit(url)
        path = parsed.path or "/"
        if parsed.query:
            path += "?" + parsed.query
        conn = http.client.HTTPConnection(self.host, self._port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for key, value in headers:
                conn.putheader(key, value)
            conn.putheader("Content-Length", "0")
            conn.endheaders()
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


# ------------------------------------------------------------------------------------------------------------
# Child process
# ------------------------------------------------------------------------------------------------------------
def _patch_empty_body_payload_hash() -> None:
    """Make moto hash the empty body of a query-string POST, as AWS does.

    moto's ``IAMRequestBase._create_aws_request`` rebuilds the request with ``data=self._body or self._data``:
    for an empty body it falls back to the parsed parameters (needed when werkzeug consumed a form body), which
    for a query-string-only POST turns the empty payload into a form payload and breaks the signature. When the
    request really carried no body (``Content-Length`` absent or 0), sign the empty body instead. Tolerant of
    moto 5.0 - 5.2: only the attribute names ``_headers`` and ``_body`` and the returned ``AWSRequest`` are used.
    """
    from moto.iam import access_control

    base = access_control.IAMRequestBase
    original = base._create_aws_request
    if getattr(original, "_gcp_wif_patched", False):
        return

    def _create_aws_request(self: Any) -> Any:
        request = original(self)
        headers = getattr(self, "_headers", {}) or {}
        content_length = headers.get("Content-Length") or headers.get("content-length") or "0"
        if not getattr(self, "_body", b"") and str(content_length).strip() in ("", "0"):
            request.data = b""
        return request

    _create_aws_request._gcp_wif_patched = True  # type: ignore[attr-defined]
    base._create_aws_request = _create_aws_request  # type: ignore[method-assign]


_MISSING_AUTHENTICATION_XML = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    "<Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code>"
    "<Message>Request is missing Authentication Token</Message></Error>"
    "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c8</RequestId></ErrorResponse>"
)
_UNSIGNED_STS_ACTIONS = frozenset({"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"})


def _patch_unsigned_web_identity() -> None:
    """Skip moto's SigV4 check for an unsigned ``AssumeRoleWithWebIdentity``/``AssumeRoleWithSAML`` (STS only)."""
    try:
        from moto.core.authorization import ActionAuthenticatorMixin
    except ImportError:  # moto < 5.1 (MWAA 2.9.2-2.11.2 pin 5.0.9 / 5.0.11): the same class, in moto.core.responses
        from moto.core.responses import ActionAuthenticatorMixin

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action
    if getattr(original, "_gcp_wif_patched", False):
        return

    def _authenticate_and_authorize_action(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        headers = getattr(self, "headers", {}) or {}
        if (type(self).__module__.startswith("moto.sts.")
                and not headers.get("Authorization")
                and self._get_action() in _UNSIGNED_STS_ACTIONS):
            return
        if type(self).__module__.startswith("moto.sts.") and self._get_action() == "GetWebIdentityToken":
            iam_request_cls = _with_web_identity_token_policy_check(iam_request_cls)
        original(self, iam_request_cls, resource)

    _authenticate_and_authorize_action._gcp_wif_patched = True  # type: ignore[attr-defined]
    ActionAuthenticatorMixin._authenticate_and_authorize_action = (  # type: ignore[method-assign]
        _authenticate_and_authorize_action)


def _patch_numeric_condition_values() -> None:
    """Let moto's policy validator take JSON numbers as condition values, as AWS does (its own examples write
    ``"NumericLessThanEquals": {"sts:DurationSeconds": 300}``): moto 5.x refused them as ``MalformedPolicyDocument``.
    Only the type test is widened; every other check of the validator stays."""
    from moto.iam import policy_validation

    validator = policy_validation.IAMPolicyDocumentValidator
    original = validator._validate_condition_syntax
    if getattr(original, "_gcp_wif_patched", False):
        return

    def _validate_condition_syntax(statement: dict[str, Any]) -> None:
        conditions = statement.get("Condition")
        if isinstance(conditions, dict):
            statement = {**statement, "Condition": {
                operator: ({key: str(value) if isinstance(value, (int, float)) and not isinstance(value, bool)
                            else value for key, value in pairs.items()} if isinstance(pairs, dict) else pairs)
                for operator, pairs in conditions.items()}}
        original(statement)

    _validate_condition_syntax._gcp_wif_patched = True  # type: ignore[attr-defined]
    validator._validate_condition_syntax = staticmethod(_validate_condition_syntax)  # type: ignore[method-assign]


def _with_web_identity_token_policy_check(iam_request_cls: type) -> type:
    """moto's request class with the permission check of ``GetWebIdentityToken``: signature checked by moto as
    always, then the caller's policies evaluated with the action's condition keys (moto evaluates none)."""
    from . import aws_outbound

    class WebIdentityTokenRequest(iam_request_cls):
        def check_action_permitted(self, resource: str) -> None:
            params = aws_outbound._params(self._data)
            message = aws_outbound.validation_error(params)
            if message:
                raise aws_outbound.http_error(400, "ValidationError", message)
            documents = [aws_outbound.policy_json(policy) for policy in self._access_key.collect_policies()]
            context = aws_outbound.condition_context(params)
            # passing Tags also needs sts:TagGetWebIdentityToken (IAM User Guide, outbound federation policies)
            actions = ["sts:GetWebIdentityToken"] + (["sts:TagGetWebIdentityToken"] if context["aws:tagkeys"] else [])
            for action in actions:
                verdict = aws_outbound.evaluate(documents, action, context)
                if verdict != "allow":
                    raise aws_outbound.http_error(403, "AccessDenied", aws_outbound.access_denied_message(
                        self._access_key.arn, action, verdict))

    return WebIdentityTokenRequest


def _add_outbound_federation_actions() -> None:
    """Teach moto's IAM and STS the outbound identity federation actions (:mod:`.aws_outbound`)."""
    from moto.iam.responses import IamResponse
    from moto.sts.responses import TokenResponse

    from . import aws_outbound

    for name in ("enable_outbound_web_identity_federation", "disable_outbound_web_identity_federation",
                 "get_outbound_web_identity_federation_info"):
        setattr(IamResponse, name, getattr(aws_outbound, name))
    TokenResponse.get_web_identity_token = aws_outbound.get_web_identity_token  # type: ignore[attr-defined]


class _HarnessMiddleware:
    """WSGI middleware: the ``/_harness/`` controls and the ``ExpiredToken`` check in front of moto."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.expired: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(_HARNESS_PREFIX):
            return self._control(path[len(_HARNESS_PREFIX):], environ, start_response)
        if path.startswith(ISSUER_PREFIX) and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return self._issuer(path, start_response)
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if not authorization and "X-Amz-Signature=" not in environ.get("QUERY_STRING", ""):
            return self._unsigned(environ, start_response)
        access_key_id = authorization.partition("Credential=")[2].partition("/")[0]
        with self.lock:
            expired = bool(access_key_id) and access_key_id in self.expired
        if expired:
            body = _EXPIRED_TOKEN_XML.encode()
            start_response("400 Bad Request", [("Content-Type", "text/xml"),
                                               ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)

    def _unsigned(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Only the STS actions AWS serves unsigned get through; anything else is ``MissingAuthenticationToken``."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        params = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        if b"=" in body and "json" not in environ.get("CONTENT_TYPE", ""):
            params.update(urllib.parse.parse_qs(body.decode("utf-8", "replace")))
        if set(params.get("Action", [])) & _UNSIGNED_STS_ACTIONS:
            return self.app(environ, start_response)
        payload = _MISSING_AUTHENTICATION_XML.encode()
        start_response("403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(payload)))])
        return [payload]

    @staticmethod
    def _issuer(path: str, start_response: Any) -> Any:
        """The account issuers' OIDC discovery document and JWKS (public, unsigned, like AWS's)."""
        from .aws_outbound import FEDERATION

        status, document = FEDERATION.serve_issuer(path)
        if document is None:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        body = json.dumps(document).encode()
        start_response(f"{status} OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                        ("Cache-Control", "max-age=300")])
        return [body]

    def _control(self, action: str, environ: dict[str, Any], start_response: Any) -> Any:
        from .aws_outbound import FEDERATION

        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = json.loads(environ["wsgi.input"].read(length) or b"{}")
        answer: dict[str, Any] = {}
        with self.lock:
            if action == "expire":
                self.expired.add(str(payload["access_key_id"]))
            elif action == "clear":
                self.expired.clear()
            elif action == "outbound":
                FEDERATION.set_enabled(str(payload["account_id"]), bool(payload["enabled"]))
            elif action == "clock":
                FEDERATION.clock_offset = float(payload["offset_seconds"])
            elif action == "issuer":
                account = FEDERATION.account(str(payload["account_id"]))
                answer = {"issuer": FEDERATION.issuer_url(account.account_id), "enabled": account.enabled}
            else:
                start_response("404 Not Found", [("Content-Length", "0")])
                return [b""]
        body = json.dumps(answer).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def _seed(endpoint: str, region: str) -> dict[str, Any]:
    """Create the fixture identities through moto's own API (auth still off)."""
    import boto3

    def iam_client(account_id: str) -> Any:
        client = boto3.client("iam", endpoint_url=endpoint, region_name=region,
                              aws_access_key_id="seed", aws_secret_access_key="seed")

        def pin_account(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account_id

        client.meta.events.register("before-sign.iam.*", pin_account)
        return client

    def make_account(account_id: str, user_name: str, role_names: list[str]) -> dict[str, str]:
        iam = iam_client(account_id)
        iam.create_user(UserName=user_name)
        user_arn = f"arn:aws:iam::{account_id}:user/{user_name}"
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                           "Principal": {"AWS": [user_arn, f"arn:aws:iam::{account_id}:root"]}}],
        }
        role_arns = []
        for role_name in role_names:
            role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
            role_arns.append(role["Role"]["Arn"])
            iam.put_role_policy(RoleName=role_name, PolicyName="caller-identity", PolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": "*"},
                              # an MWAA execution role's Celery queue (make mwaa: kombu's SQS transport)
                              {"Effect": "Allow", "Action": ["sqs:*"], "Resource": "*"}],
            }))
            if role_name not in NO_JWT_ROLE_NAMES:  # outbound identity federation (federation: jwt)
                iam.put_role_policy(RoleName=role_name, PolicyName="web-identity-token",
                                    PolicyDocument=json.dumps(_WEB_IDENTITY_TOKEN_POLICY))
        iam.put_user_policy(UserName=user_name, PolicyName="assume-wif-roles", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": role_arns},
                {"Effect": "Allow", "Action": ["sts:GetCallerIdentity", "sts:GetSessionToken",
                                               "sts:GetWebIdentityToken", "sts:TagGetWebIdentityToken"],
                 "Resource": "*"},
                {"Effect": "Allow", "Action": ["iam:EnableOutboundWebIdentityFederation",
                                               "iam:DisableOutboundWebIdentityFederation",
                                               "iam:GetOutboundWebIdentityFederationInfo"], "Resource": "*"},
                # setup --federation jwt grants its roles sts:GetWebIdentityToken (inline role policies)
                {"Effect": "Allow", "Action": ["iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy",
                                               "iam:ListRolePolicies", "iam:GetRole"], "Resource": role_arns},
                {"Effect": "Allow", "Action": ["sqs:*"], "Resource": "*"},  # creates the Celery queue
            ],
        }))
        key = iam.create_access_key(UserName=user_name)["AccessKey"]
        return {"account_id": account_id, "user_name": user_name,
                "access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}

    return {
        "trusted": make_account(TRUSTED_ACCOUNT_ID, USER_NAME, [ROLE_NAME, LONG_ROLE_NAME, NO_JWT_ROLE_NAME]),
        "untrusted": make_account(UNTRUSTED_ACCOUNT_ID, UNTRUSTED_USER_NAME, [UNTRUSTED_ROLE_NAME]),
    }


def _serve(host: str, region: str) -> int:
    from moto import settings

    settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
    _patch_empty_body_payload_hash()
    _patch_unsigned_web_identity()
    _add_outbound_federation_actions()
    _patch_numeric_condition_values()

    from moto.moto_server import werkzeug_app
    from werkzeug.serving import make_server

    app = _HarnessMiddleware(werkzeug_app.DomainDispatcherApplication(werkzeug_app.create_backend_app))
    handler = getattr(werkzeug_app, "MotoRequestHandler", None)
    kwargs = {"request_handler": handler} if handler is not None else {}
    server = make_server(host, 0, app, threaded=True, **kwargs)
    port = server.server_port
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()

    from .aws_outbound import FEDERATION

    FEDERATION.base_url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    fixture = _seed(f"http://{host}:{port}", region)
    FEDERATION.set_enabled(TRUSTED_ACCOUNT_ID, True)  # the trusted account has outbound federation enabled
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # from here on, every request's signature is verified

    sys.stdout.write(json.dumps({"port": port, **fixture}) + "\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    server.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="moto child process of the gcp-wif emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--region", default=DEFAULT_REGION)
    parser.add_argument(ALLOW_FLAG, action="store_true")
    args = parser.parse_args(argv)
    try:
        require_loopback(args.host, args.allow_non_loopback)
    except NonLoopbackHostError as err:
        parser.error(str(err))
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    return _serve(args.host, args.region)


if __name__ == "__main__":
    sys.exit(main())
