"""Emulated AWS identity sources: every way Airflow on AWS gets its AWS identity without a key in its config.

Each fake serves what the real source serves, on loopback, and each credential it hands out is a real temporary
credential of the execution role issued by the emulated AWS (moto ``AssumeRole`` signed with the fixture user's
keys), so the emulated AWS's signature check accepts it:

* **ECS / Fargate container credentials** — ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` on a loopback HTTP endpoint
  (``GET`` → ``{AccessKeyId, SecretAccessKey, Token, Expiration, RoleArn}``). ``/v2/credentials/<container>``
  serves one container's credentials: the role session is named after the container (as ECS names it after the
  task), so ``arn:aws:sts::<acct>:assumed-role/wif-role/<container>`` tells which container made an exchange.
* **EKS Pod Identity** — the same endpoint shape on another path that requires the ``Authorization`` header to
  equal the token in ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (401 otherwise, as the Pod Identity agent does).
* **EC2 IMDSv2** — ``PUT /latest/api/token`` (``X-aws-ec2-metadata-token-ttl-seconds`` required), then
  ``/latest/meta-data/iam/security-credentials/[<role>]`` with ``X-aws-ec2-metadata-token`` (401 without it:
  IMDSv2 only). botocore reads ``AWS_EC2_METADATA_SERVICE_ENDPOINT``.
* **EKS IRSA** — a web-identity token file; botocore calls ``AssumeRoleWithWebIdentity`` (unsigned, as on real
  AWS) on the emulated AWS, which the harness lets through unsigned (see :mod:`.aws`).
* **A profile with ``role_arn`` / ``source_profile``** — an AWS config + shared credentials file.

Credentials have a short, configurable lifetime (``ttl_seconds``): the vendor rotates them (a new ``AssumeRole``)
once less than half their lifetime is left, as the ECS agent rotates ahead of expiry, and makes the emulated AWS
answer ``ExpiredToken`` to each rotated-away key once its advertised ``Expiration`` has passed — so a client that
does not refresh fails, as it would on AWS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .aws import ROLE_NAME, AwsEmulator

ECS_PREFIX = "/v2/credentials/"
ECS_PATH = ECS_PREFIX + "execution-role"
POD_IDENTITY_PATH = "/v1/credentials/eks-pod-identity"
_IMDS_CREDENTIALS = "/latest/meta-data/iam/security-credentials/"
_IMDS_TOKEN = "/latest/api/token"
_MAX_IMDS_TOKEN_TTL = 21600


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class CredentialVendor:
    """Temporary credentials of the execution role, obtained from the emulated AWS by ``AssumeRole``."""

    def __init__(self, aws: AwsEmulator, role_name: str = ROLE_NAME, ttl_seconds: float = 300.0,
                 session_name: str = "execution-role") -> None:
        assert aws.trusted is not None, "AwsEmulator.start() first"
        self.aws = aws
        self.role_arn = f"arn:aws:iam::{aws.trusted.account_id}:role/{role_name}"
        self.ttl_seconds = float(ttl_seconds)
        self.session_name = session_name
        self.rotations = 0
        self.served = 0
        self._current: dict[str, Any] | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._client: Any = None

    def set_ttl(self, seconds: float) -> None:
        """Lifetime of credentials issued from now on; the current ones are rotated at the next request."""
        with self._lock:
            self.ttl_seconds = float(seconds)
            self._expires_at = 0.0

    def current(self) -> dict[str, Any]:
        """The credentials a credential endpoint serves now (rotated when less than half their life is left)."""
        with self._lock:
            now = time.time()
            if self._current is None or self._expires_at - now < self.ttl_seconds / 2:
                self._rotate(now)
            self.served += 1
            assert self._current is not None
            return dict(self._current)

    def _sts(self) -> Any:
        if self._client is None:
            import boto3

            assert self.aws.trusted is not None
            self._client = boto3.client(
                "sts", endpoint_url=self.aws.endpoint, region_name=self.aws.region,
                aws_access_key_id=self.aws.trusted.access_key_id,
                aws_secret_access_key=self.aws.trusted.secret_access_key)
        return self._client

    def _rotate(self, now: float) -> None:
        # the role session lasts at least as long as the expiry we advertise (AWS's minimum is 900 s), so the
        # emulated AWS never refuses a GetWebIdentityToken duration the advertised expiry allows
        # (SessionDurationEscalationException compares with the session's own expiry)
        duration = min(max(900, int(self.ttl_seconds) + 1), 43200)
        response = self._sts().assume_role(RoleArn=self.role_arn, RoleSessionName=self.session_name,
                                           DurationSeconds=duration)
        issued = response["Credentials"]
        previous, previous_expiry = self._current, self._expires_at
        self._expires_at = now + self.ttl_seconds
        self._current = {
            "AccessKeyId": issued["AccessKeyId"],
            "SecretAccessKey": issued["SecretAccessKey"],
            "Token": issued["SessionToken"],
            "Expiration": _iso(self._expires_at),
            "RoleArn": self.role_arn,
        }
        self.rotations += 1
        if previous is not None:
            self._expire_later(previous["AccessKeyId"], max(0.0, previous_expiry - now))

    def _expire_later(self, access_key_id: str, delay: float) -> None:
        def expire() -> None:
            with contextlib.suppress(Exception):  # the emulated AWS is stopping
                self.aws.expire_access_key(access_key_id)

        timer = threading.Timer(delay, expire)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers = []


class _Server:
    """A ``ThreadingHTTPServer`` on loopback running in a daemon thread."""

    def __init__(self, host: str, handler: type[BaseHTTPRequestHandler], owner: Any) -> None:
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = owner  # type: ignore[attr-defined]
        self.url = f"http://{host}:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=handler.__name__, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    server_version = "gcp-wif-identity-fake"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    @property
    def owner(self) -> AwsIdentitySources:
        return self.server.owner  # type: ignore[attr-defined]

    def _send(self, status: int, body: str | dict[str, Any], content_type: str = "application/json") -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _ContainerHandler(_Handler):
    """ECS container credentials and the EKS Pod Identity agent."""

    def do_GET(self) -> None:
        owner = self.owner
        path = self.path.split("?", 1)[0]
        if path == POD_IDENTITY_PATH:
            if self.headers.get("Authorization", "") != owner.pod_identity_token:
                owner.count("eks_pod_identity.denied")
                self._send(401, {"Message": "Invalid authorization token"})
                return
            owner.count("eks_pod_identity")
            self._send(200, owner.vendor.current())
            return
        container = path[len(ECS_PREFIX):] if path.startswith(ECS_PREFIX) else ""
        if not container or not all(c.isalnum() or c in "-_" for c in container) or len(container) > 64:
            self._send(404, {"Message": "Not found"})
            return
        owner.count("ecs")
        self._send(200, owner.vendor_for(container).current())


class _ImdsHandler(_Handler):
    """IMDSv2 only: a session token is required for every metadata read."""

    def do_PUT(self) -> None:
        owner = self.owner
        if self.path != _IMDS_TOKEN or self.headers.get("X-Forwarded-For"):
            self._send(403, "Forbidden", "text/plain")
            return
        try:
            ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= _MAX_IMDS_TOKEN_TTL:
            self._send(400, "Bad Request", "text/plain")
            return
        token = secrets.token_urlsafe(32)
        with owner.lock:
            owner.imds_tokens[token] = time.time() + ttl
        owner.count("imds.token")
        self._send(200, token, "text/plain")

    def do_GET(self) -> None:
        owner = self.owner
        token = self.headers.get("X-aws-ec2-metadata-token", "")
        with owner.lock:
            valid = owner.imds_tokens.get(token, 0.0) > time.time()
        if not valid:
            owner.count("imds.unauthorized")
            self._send(401, "Unauthorized", "text/plain")
            return
        role = owner.vendor.role_arn.rsplit("/", 1)[1]
        if self.path == _IMDS_CREDENTIALS:
            self._send(200, role, "text/plain")
        elif self.path == _IMDS_CREDENTIALS + role:
            owner.count("imds")
            credentials = owner.vendor.current()
            credentials.pop("RoleArn", None)
            self._send(200, {"Code": "Success", "LastUpdated": _iso(time.time()), "Type": "AWS-HMAC",
                             **credentials})
        else:
            self._send(404, "Not Found", "text/plain")


class AwsIdentitySources:
    """The loopback identity fakes of one emulated AWS, with their files in a private temp dir.

    ``info()`` names, per source, its endpoint and the environment a process needs to use it (set these and
    ``AIRFLOW_CONN_AWS_DEFAULT=aws://``; remove any ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_PROFILE``).
    """

    def __init__(self, aws: AwsEmulator, host: str = "127.0.0.1", ttl_seconds: float = 300.0) -> None:
        self.aws = aws
        self.host = host
        self.vendor = CredentialVendor(aws, ttl_seconds=ttl_seconds)
        self.vendors: dict[str, CredentialVendor] = {self.vendor.session_name: self.vendor}
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.imds_tokens: dict[str, float] = {}
        self.pod_identity_token = secrets.token_urlsafe(24)
        self.directory = ""
        self._container: _Server | None = None
        self._imds: _Server | None = None

    def vendor_for(self, container: str) -> CredentialVendor:
        """The credentials of one ECS container (role session ``container``); ``execution-role`` is the default."""
        with self.lock:
            vendor = self.vendors.get(container)
            if vendor is None:
                vendor = self.vendors[container] = CredentialVendor(
                    self.aws, ttl_seconds=self.vendor.ttl_seconds, session_name=container)
            return vendor

    def container_env(self, container: str) -> dict[str, str]:
        """``ecs`` env of one named container (its own role session)."""
        env = dict(self.info()["ecs"]["env"])
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"{self._container.url if self._container else ''}" \
            f"{ECS_PREFIX}{container}"
        return env

    def count(self, name: str) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    def start(self) -> AwsIdentitySources:
        self.directory = tempfile.mkdtemp(prefix="gcp-wif-aws-identities-")
        self._write(".eks-pod-identity-token", self.pod_identity_token)
        # An OIDC token of the cluster's service account; the emulated AWS (moto) does not validate it.
        self._write(".irsa-web-identity-token", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6"
                    "YWlyZmxvdzphaXJmbG93In0." + secrets.token_urlsafe(32))
        assert self.aws.trusted is not None
        trusted = self.aws.trusted
        self._write("config", "\n".join([
            "[profile wif-source]", f"region = {self.aws.region}", "",
            "[profile wif]", f"role_arn = {self.vendor.role_arn}", "source_profile = wif-source",
            "role_session_name = profile-session", f"region = {self.aws.region}", ""]))
        self._write("credentials", "\n".join([
            "[wif-source]", f"aws_access_key_id = {trusted.access_key_id}",
            f"aws_secret_access_key = {trusted.secret_access_key}", ""]))
        self._container = _Server(self.host, _ContainerHandler, self)
        self._imds = _Server(self.host, _ImdsHandler, self)
        return self

    def _write(self, name: str, content: str) -> None:
        path = os.path.join(self.directory, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(path, 0o600)

    def stop(self) -> None:
        for vendor in self.vendors.values():
            vendor.close()
        for server in (self._container, self._imds):
            if server is not None:
                server.stop()
        self._container = self._imds = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""

    def info(self) -> dict[str, Any]:
        assert self._container is not None and self._imds is not None
        common = {"AIRFLOW_CONN_AWS_DEFAULT": "aws://", "AWS_REGION": self.aws.region,
                  "AWS_DEFAULT_REGION": self.aws.region, "AWS_ENDPOINT_URL_STS": self.aws.endpoint}
        join = os.path.join
        return {
            "role_arn": self.vendor.role_arn,
            "credential_ttl_seconds": self.vendor.ttl_seconds,
            "ecs": {"endpoint": self._container.url + ECS_PATH,
                    "env": {**common, "AWS_CONTAINER_CREDENTIALS_FULL_URI": self._container.url + ECS_PATH}},
            "eks_pod_identity": {
                "endpoint": self._container.url + POD_IDENTITY_PATH,
                "env": {**common, "AWS_CONTAINER_CREDENTIALS_FULL_URI": self._container.url + POD_IDENTITY_PATH,
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": join(self.directory, ".eks-pod-identity-token")}},
            "eks_irsa": {
                "endpoint": self.aws.endpoint,
                "env": {**common, "AWS_ROLE_ARN": self.vendor.role_arn, "AWS_ROLE_SESSION_NAME": "irsa-session",
                        "AWS_WEB_IDENTITY_TOKEN_FILE": join(self.directory, ".irsa-web-identity-token")}},
            "ec2_imds": {
                "endpoint": self._imds.url,
                "env": {**common, "AWS_EC2_METADATA_SERVICE_ENDPOINT": self._imds.url + "/",
                        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv4", "AWS_EC2_METADATA_DISABLED": "false"}},
            "profile": {
                "endpoint": self.aws.endpoint,
                "env": {**common, "AWS_PROFILE": "wif", "AWS_CONFIG_FILE": join(self.directory, "config"),
                        "AWS_SHARED_CREDENTIALS_FILE": join(self.directory, "credentials")}},
        }
