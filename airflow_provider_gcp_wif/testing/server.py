"""One HTTP server for the emulated Google endpoints and the ``/_emulator/`` control plane.

Routes: ``POST /v1/token`` (STS), ``POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken`` and
``:generateIdToken`` (IAM Credentials), ``GET /v1/projects/<project>`` (Resource Manager), ``/storage/v1/``,
``/upload/storage/v1/``, ``/download/storage/v1/`` (Cloud Storage),
``GET /v1/projects/<project>/secrets/<secret>/versions/<version>:access`` (Secret Manager),
``POST /token`` (OAuth 2.0 JWT-bearer grant of service-account keys),
``GET /oauth2/v1/certs`` and ``/oauth2/v3/certs`` (the ID-token signing certificates, PEM and JWKS),
``/_emulator/*`` (controls, loopback only).
Every Google request passes the fault injector first and lands in the request log afterwards.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from typing import TYPE_CHECKING, Any

from . import api_errors as errors
from .api_errors import ApiError
from .state import ConfigError, EmulatorState

if TYPE_CHECKING:
    from .aws import AwsEmulator

_IAM_PATH = re.compile(r"^/v1/projects/([^/]+)/serviceAccounts/([^/:]+):(generateAccessToken|generateIdToken)$")
_CRM_PATH = re.compile(r"^/v1/projects/([^/:]+)$")
_SECRET_PATH = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/:]+):access$")
_CERTS_PATHS = ("/oauth2/v1/certs", "/oauth2/v3/certs")
_STORAGE_PREFIXES = ("/storage/v1/", "/upload/storage/v1/", "/download/storage/v1/")
_SERVICES = {"sts": "sts.googleapis.com", "iam": "iamcredentials.googleapis.com",
             "storage": "storage.googleapis.com", "crm": "cloudresourcemanager.googleapis.com",
             "secretmanager": "secretmanager.googleapis.com", "certs": "www.googleapis.com",
             "oauth2": "oauth2.googleapis.com"}


def classify(method: str, path: str) -> str | None:
    if path == "/v1/token":
        return "sts"
    if path == "/token":
        return "oauth2"
    match = _IAM_PATH.match(path)
    if match:
        return f"iam.{match.group(3)}"
    if path.startswith(_STORAGE_PREFIXES) or path == "/storage/v1":
        return "storage"
    if method == "GET" and _CRM_PATH.match(path):
        return "crm"
    if _SECRET_PATH.match(path):
        return "secretmanager"
    if path in _CERTS_PATHS:
        return "certs"
    return None


class _Reply:
    def __init__(self, status: int, body: bytes, content_type: str = "application/json; charset=UTF-8",
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = {"Content-Type": content_type, **(headers or {})}

    @classmethod
    def json(cls, status: int, value: Any, headers: dict[str, str] | None = None) -> _Reply:
        return cls(status, json.dumps(value).encode(), headers=headers)


class GoogleCloudServer:
    """The werkzeug server; ``info`` is served at ``/_emulator/info`` once the emulator fills it in."""

    def __init__(self, state: EmulatorState, aws: AwsEmulator | None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.state = state
        self.aws = aws
        self.host = host
        self.port = port
        self.info: dict[str, Any] = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> GoogleCloudServer:
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server(self.host, self.port, self.wsgi_app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="gcp-wif-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # -- WSGI ----------------------------------------------------------------------------------------------
    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        from werkzeug.wrappers import Request

        request = Request(environ)
        reply = self._control(request) if request.path.startswith("/_emulator/") else self._google(request, environ)
        start_response(f"{reply.status} {_reason(reply.status)}",
                       [*reply.headers.items(), ("Content-Length", str(len(reply.body)))])
        return [reply.body]

    def _google(self, request: Any, environ: dict[str, Any]) -> _Reply:
        endpoint = classify(request.method, request.path)
        if endpoint is None:
            return _Reply.json(404, {"error": {"code": 404, "message": f"Not found: {request.path}",
                                               "status": "NOT_FOUND"}})
        pid_header = request.headers.get("x-gcp-wif-pid")
        log: dict[str, Any] = {
            "time": self.state.now(), "endpoint": endpoint, "method": request.method, "path": request.path,
            "status": None, "principal": None, "token_fingerprint": None,
            "pid": int(pid_header) if pid_header and pid_header.isdigit() else None,
            "user_agent": request.headers.get("User-Agent"), "fault": None,
        }
        body = request.get_data()
        fault = self.state.next_fault(endpoint)
        reply: _Reply | None = None
        if fault is not None:
            kind, status, delay, rule = fault
            log["fault"] = kind
            if delay > 0:
                time.sleep(delay)
            if kind == "status":
                reply = self._error_reply(self._injected_error(endpoint, status))
            elif kind == "malformed":
                reply = _Reply(200, b'{"access_token": "ya29.trunc', headers={})
            elif kind == "body":
                reply = _Reply(status, rule.body.encode(), content_type=rule.content_type)
            elif kind == "reset":
                log["status"] = 0
                self.state.record(log)
                _reset_connection(environ)
        if reply is None:
            started = time.perf_counter()
            reply = self._dispatch(endpoint, request, environ, body, log)
            # Server-side work (for STS: including the replay to AWS), without injected delays: benchmarks
            # subtract it to find the client's own overhead.
            log["server_ms"] = round((time.perf_counter() - started) * 1000, 3)
            if fault is not None and fault[0] == "bad_expiry" and reply.status == 200:
                reply = _with_bad_expiry(reply)
        log["status"] = reply.status
        self.state.record(log)
        return reply

    def _dispatch(self, endpoint: str, request: Any, environ: dict[str, Any], body: bytes,
                  log: dict[str, Any]) -> _Reply:
        from . import crm, iam, oauth2, secret_manager, storage, sts

        try:
            if endpoint == "oauth2":
                if request.method != "POST":
                    raise errors.google_error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
                return _Reply.json(200, oauth2.TokenEndpoint(self.state, log, f"{self.url}/token").handle(body))
            if endpoint == "sts":
                if request.method != "POST":
                    raise errors.google_error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
                result = sts.TokenExchange(self.state, self.aws, log).handle(request.content_type or "", body)
                return _Reply.json(200, result)
            if endpoint.startswith("iam."):
                if request.method != "POST":
                    raise errors.google_error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
                match = _IAM_PATH.match(request.path)
                assert match is not None
                result = iam.ServiceAccountCredentials(self.state, log).handle(
                    match.group(3), urllib.parse.unquote(match.group(2)), request.headers.get("Authorization"),
                    body)
                return _Reply.json(200, result)
            if endpoint == "crm":
                match = _CRM_PATH.match(request.path)
                assert match is not None
                return _Reply.json(200, crm.get_project(self.state, log, match.group(1),
                                                        request.headers.get("Authorization")))
            if endpoint == "secretmanager":
                if request.method != "GET":
                    raise errors.google_error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
                match = _SECRET_PATH.match(request.path)
                assert match is not None
                return _Reply.json(200, secret_manager.access_secret_version(
                    self.state, log, match.group(1), match.group(2), match.group(3),
                    request.headers.get("Authorization")))
            if endpoint == "certs":
                signer = self.state.id_token_signer
                return _Reply.json(200, signer.jwks() if request.path.endswith("/v3/certs") else signer.certificates(),
                                   {"Cache-Control": "public, max-age=3600"})
            raw_path = (environ.get("REQUEST_URI") or environ.get("RAW_URI") or request.path).split("?")[0]
            if "://" in raw_path:  # absolute-form request target
                raw_path = urllib.parse.urlsplit(raw_path).path
            query = {k: v for k, v in request.args.items()}
            base_url = f"http://{request.host}"
            answer = storage.StorageApi(self.state, log, base_url).handle(
                request.method, raw_path, query, request.headers, body)
            if isinstance(answer.body, dict):
                return _Reply.json(answer.status, answer.body, answer.headers)
            headers = dict(answer.headers)
            content_type = headers.pop("Content-Type", "text/plain; charset=utf-8")
            return _Reply(answer.status, answer.body or b"", content_type, headers)
        except ApiError as error:
            log["error"] = error.body.get("error") if isinstance(error.body.get("error"), str) else \
                error.body["error"].get("status") or error.body["error"].get("message")
            return self._error_reply(error)
        except Exception:  # noqa: BLE001 - an emulator bug must not look like a Google answer a test accepts
            traceback.print_exc(file=sys.stderr)
            return self._error_reply(errors.internal_error())

    def _injected_error(self, endpoint: str, status: int) -> ApiError:
        project_number = self.state.snapshot()["project_number"]
        if endpoint == "storage":
            reasons = {429: "rateLimitExceeded", 500: "backendError", 503: "backendError"}
            return errors.storage_error(status, reasons.get(status, "injected"),
                                        {429: "The rate of change requests to the object is too high.",
                                         500: "Backend Error", 503: "Backend Error"}.get(status,
                                                                                      f"Injected HTTP {status}"))
        return errors.status_error(status, _SERVICES[endpoint.split(".")[0]], project_number)

    @staticmethod
    def _error_reply(error: ApiError) -> _Reply:
        return _Reply.json(error.status, error.body, error.headers)

    # -- control plane -------------------------------------------------------------------------------------
    def _control(self, request: Any) -> _Reply:
        remote = request.remote_addr or ""
        if not (remote.startswith("127.") or remote in ("::1", "localhost")):
            return _Reply.json(403, {"error": "the control plane only answers loopback clients"})
        action = request.path[len("/_emulator/"):].strip("/")
        method = request.method
        try:
            payload = request.get_json(silent=True) if request.get_data() else None
            payload = payload if payload is not None else {}
            return self._control_action(action, method, payload, request.args)
        except (ConfigError, KeyError, TypeError, ValueError) as error:
            return _Reply.json(400, {"error": str(error)})

    def _control_action(self, action: str, method: str, payload: Any, args: Any) -> _Reply:
        state = self.state
        ok = _Reply.json(200, {"ok": True})
        if action == "info" and method == "GET":
            return _Reply.json(200, self.info)
        if action == "config":
            if method == "GET":
                return _Reply.json(200, state.snapshot())
            if method == "PUT":
                state.replace_config(payload)
                return _Reply.json(200, state.snapshot())
            if method == "PATCH":
                state.patch_config(payload)
                return _Reply.json(200, state.snapshot())
        if action == "reset" and method == "POST":
            state.reset()
            if self.aws is not None:
                self.aws.clear_expired()
                self.aws.reset_outbound_federation()
                self.aws.set_clock_offset(0.0)
            return ok
        if action == "requests":
            if method == "GET":
                return _Reply.json(200, state.requests(args.get("endpoint") or None))
            if method == "DELETE":
                state.clear_log()
                return ok
        if action == "counters" and method == "GET":
            return _Reply.json(200, state.counters())
        if action == "faults":
            if method == "POST":
                return _Reply.json(200, state.add_fault(payload))
            if method == "DELETE":
                state.clear_faults()
                return ok
            if method == "GET":
                with state.lock:
                    return _Reply.json(200, [state.describe_fault(r) for r in state.faults])
        if action == "clock":
            if method == "POST":
                with state.lock:
                    if "offset_seconds" in payload:
                        state.clock_offset = float(payload["offset_seconds"])
                    state.clock_offset += float(payload.get("advance_seconds", 0))
                if self.aws is not None:
                    self.aws.set_clock_offset(state.clock_offset)
            if method in ("POST", "GET"):
                return _Reply.json(200, {"now": state.now(), "offset_seconds": state.clock_offset})
        if action == "service_account_keys" and method == "POST":
            from . import oauth2

            return _Reply.json(200, oauth2.create_key(state, str(payload["email"]), f"{self.url}/token"))
        if action == "tokens" and method == "DELETE":
            state.revoke_tokens()
            return ok
        if action == "aws/expire" and method == "POST":
            if self.aws is None:
                return _Reply.json(409, {"error": "no emulated AWS attached"})
            self.aws.expire_access_key(str(payload["access_key_id"]))
            return ok
        if action == "aws/outbound_federation" and method in ("POST", "GET"):
            if self.aws is None:
                return _Reply.json(409, {"error": "no emulated AWS attached"})
            account_id = str(payload.get("account_id") or args.get("account_id") or self.aws.trusted_account_id)
            if method == "POST":
                if payload["enabled"]:
                    self.aws.enable_outbound_federation(account_id)
                else:
                    self.aws.disable_outbound_federation(account_id)
            return _Reply.json(200, {"account_id": account_id, "issuer": self.aws.issuer_url(account_id),
                                     "enabled": self.aws.outbound_federation_enabled(account_id)})
        return _Reply.json(404, {"error": f"unknown control {method} /_emulator/{action}"})


def _with_bad_expiry(reply: _Reply) -> _Reply:
    """The same answer (its token stays live) with an expiry no client can parse."""
    body = json.loads(reply.body)
    for name in ("expires_in", "expireTime"):
        if name in body:
            body[name] = "soon"
    return _Reply.json(reply.status, body, {k: v for k, v in reply.headers.items() if k != "Content-Type"})


def _reset_connection(environ: dict[str, Any]) -> None:
    """Drop the connection without an HTTP answer (the client sees a reset / remote disconnect)."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise ConnectionResetError("injected connection reset")


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"

