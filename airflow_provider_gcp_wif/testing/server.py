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
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.wrappers import Request, Response

from . import api_errors as errors
from .api_errors import ApiError
from .state import ConfigError, EmulatorState

if TYPE_CHECKING:
    from .aws import AwsEmulator

_JSON = "application/json; charset=UTF-8"
_SERVICES = {"sts": "sts.googleapis.com", "iam": "iamcredentials.googleapis.com",
             "storage": "storage.googleapis.com", "crm": "cloudresourcemanager.googleapis.com",
             "secretmanager": "secretmanager.googleapis.com", "certs": "www.googleapis.com",
             "oauth2": "oauth2.googleapis.com"}


class _ResourceId(BaseConverter):
    """One path segment before a custom verb (``<id>:verb``): no ``/`` and no ``:``."""

    regex = "[^/:]+"


class _Rest(BaseConverter):
    """The rest of the path, possibly empty, slashes included (Cloud Storage parses it itself)."""

    regex = r"[\s\S]*"
    part_isolating = False


_SA = "/v1/projects/<project>/serviceAccounts/<id:email>"
# The Google endpoints, by the name the request log, counters and fault injection use. A rule says nothing
# about methods: a wrong method still reaches (and is logged and faulted as) its endpoint, which answers 405.
GOOGLE_ROUTES = Map([
    Rule("/v1/token", endpoint="sts"),
    Rule("/token", endpoint="oauth2"),
    Rule(f"{_SA}:generateAccessToken", endpoint="iam.generateAccessToken"),
    Rule(f"{_SA}:generateIdToken", endpoint="iam.generateIdToken"),
    Rule("/storage/v1", endpoint="storage"),
    *[Rule(f"/{prefix}storage/v1/<rest:path>", endpoint="storage") for prefix in ("", "upload/", "download/")],
    Rule("/v1/projects/<id:project>", endpoint="crm"),
    Rule("/v1/projects/<project>/secrets/<secret>/versions/<id:version>:access", endpoint="secretmanager"),
    Rule("/oauth2/v1/certs", endpoint="certs"),
    Rule("/oauth2/v3/certs", endpoint="certs"),
], converters={"id": _ResourceId, "rest": _Rest}, merge_slashes=False)

# The control plane under ``/_emulator/``: (action, method, handler ``GoogleCloudServer._control_<handler>``).
_CONTROLS = [
    ("info", "GET", "info"),
    ("config", "GET", "config"), ("config", "PUT", "replace_config"), ("config", "PATCH", "patch_config"),
    ("reset", "POST", "reset"),
    ("requests", "GET", "requests"), ("requests", "DELETE", "clear_requests"),
    ("counters", "GET", "counters"),
    ("faults", "GET", "faults"), ("faults", "POST", "add_fault"), ("faults", "DELETE", "clear_faults"),
    ("clock", "GET", "clock"), ("clock", "POST", "move_clock"),
    ("service_account_keys", "POST", "service_account_keys"),
    ("tokens", "DELETE", "revoke_tokens"),
    ("aws/expire", "POST", "aws_expire"),
    ("aws/outbound_federation", "GET", "aws_outbound_federation"),
    ("aws/outbound_federation", "POST", "set_aws_outbound_federation"),
]
CONTROL_ROUTES = Map([Rule(f"/{action}", methods=[method], endpoint=handler) for action, method, handler in _CONTROLS],
                     merge_slashes=False)
CONTROL_METHODS = frozenset(method for _, method, _ in _CONTROLS)


def route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The endpoint name and path arguments of a Google request, ``None`` for no Google endpoint."""
    try:
        endpoint, arguments = GOOGLE_ROUTES.bind("emulator").match(path)
    except HTTPException:
        return None
    # Resource Manager's project path answers GET only; anything else there is not a Google endpoint at all.
    if endpoint == "crm" and method != "GET":
        return None
    return str(endpoint), dict(arguments)


def _json(status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
    return _reply(status, json.dumps(value).encode(), _JSON, headers)


def _reply(status: int, body: bytes, content_type: str = _JSON, headers: dict[str, str] | None = None) -> Response:
    # The status line as Google writes it ("404 Not Found"): werkzeug's own for an int is upper case.
    return Response(body, f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}",
                    [("Content-Type", content_type), *(headers or {}).items()])


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
        from werkzeug.serving import make_server  # only a started emulator needs the server

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
        request = Request(environ)
        reply = self._control(request) if request.path.startswith("/_emulator/") else self._google(request, environ)
        # Status line, headers and body exactly as built: werkzeug's own WSGI call would drop a 204's
        # Content-Length and a HEAD answer's body, which the emulator has always sent.
        start_response(reply.status, reply.headers.to_wsgi_list())
        return [reply.get_data()]

    def _google(self, request: Request, environ: dict[str, Any]) -> Response:
        routed = route(request.method, request.path)
        if routed is None:
            return _json(404, {"error": {"code": 404, "message": f"Not found: {request.path}", "status": "NOT_FOUND"}})
        endpoint, arguments = routed
        pid_header = request.headers.get("x-gcp-wif-pid")
        log: dict[str, Any] = {
            "time": self.state.now(), "endpoint": endpoint, "method": request.method, "path": request.path,
            "status": None, "principal": None, "token_fingerprint": None,
            "pid": int(pid_header) if pid_header and pid_header.isdigit() else None,
            "user_agent": request.headers.get("User-Agent"), "fault": None,
        }
        body = request.get_data()
        fault = self.state.next_fault(endpoint)
        reply: Response | None = None
        if fault is not None:
            kind, status, delay, rule, released = fault
            log["fault"] = kind
            if delay > 0:
                released.wait(delay)  # clearing the faults lets it go early
            if kind == "status":
                reply = self._error_reply(self._injected_error(endpoint, status))
            elif kind == "malformed":
                reply = _reply(200, b'{"access_token": "ya29.trunc')
            elif kind == "body":
                reply = _reply(status, rule.body.encode(), rule.content_type)
            elif kind == "reset":
                log["status"] = 0
                self.state.record(log)
                _reset_connection(environ)
        if reply is None:
            started = time.perf_counter()
            reply = self._dispatch(endpoint, arguments, request, environ, body, log)
            # Server-side work (for STS: including the replay to AWS), without injected delays: benchmarks
            # subtract it to find the client's own overhead.
            log["server_ms"] = round((time.perf_counter() - started) * 1000, 3)
            if fault is not None and fault[0] == "bad_expiry" and reply.status_code == 200:
                reply = _with_bad_expiry(reply)
        log["status"] = reply.status_code
        self.state.record(log)
        return reply

    def _dispatch(self, endpoint: str, arguments: dict[str, str], request: Request, environ: dict[str, Any],
                  body: bytes, log: dict[str, Any]) -> Response:
        from . import crm, iam, oauth2, secret_manager, storage, sts

        authorization = request.headers.get("Authorization")
        try:
            if endpoint == "oauth2":
                _require(request, "POST")
                return _json(200, oauth2.TokenEndpoint(self.state, log, f"{self.url}/token").handle(body))
            if endpoint == "sts":
                _require(request, "POST")
                return _json(200, sts.TokenExchange(self.state, self.aws, log).handle(request.content_type or "", body))
            if endpoint.startswith("iam."):
                _require(request, "POST")
                return _json(200, iam.ServiceAccountCredentials(self.state, log).handle(
                    endpoint.split(".", 1)[1], urllib.parse.unquote(arguments["email"]), authorization, body))
            if endpoint == "crm":
                return _json(200, crm.get_project(self.state, log, arguments["project"], authorization))
            if endpoint == "secretmanager":
                _require(request, "GET")
                return _json(200, secret_manager.access_secret_version(
                    self.state, log, arguments["project"], arguments["secret"], arguments["version"], authorization))
            if endpoint == "certs":
                signer = self.state.id_token_signer
                return _json(200, signer.jwks() if request.path.endswith("/v3/certs") else signer.certificates(),
                             {"Cache-Control": "public, max-age=3600"})
            raw_path = (environ.get("REQUEST_URI") or environ.get("RAW_URI") or request.path).split("?")[0]
            if "://" in raw_path:  # absolute-form request target
                raw_path = urllib.parse.urlsplit(raw_path).path
            query = {k: v for k, v in request.args.items()}
            base_url = f"http://{request.host}"
            answer = storage.StorageApi(self.state, log, base_url).handle(
                request.method, raw_path, query, request.headers, body)
            if isinstance(answer.body, dict):
                return _json(answer.status, answer.body, answer.headers)
            headers = dict(answer.headers)
            content_type = headers.pop("Content-Type", "text/plain; charset=utf-8")
            return _reply(answer.status, answer.body or b"", content_type, headers)
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
    def _error_reply(error: ApiError) -> Response:
        return _json(error.status, error.body, error.headers)

    # -- control plane -------------------------------------------------------------------------------------
    def _control(self, request: Request) -> Response:
        remote = request.remote_addr or ""
        if not (remote.startswith("127.") or remote in ("::1", "localhost")):
            return _json(403, {"error": "the control plane only answers loopback clients"})
        action = request.path[len("/_emulator/"):].strip("/")
        method = request.method
        try:
            payload = request.get_json(silent=True) if request.get_data() else None
            payload = payload if payload is not None else {}
            if not isinstance(payload, dict):  # every control takes a JSON object (or no body)
                raise ConfigError(f"the body of {method} /_emulator/{action} must be a JSON object, "
                                  f"not {type(payload).__name__}")
            return self._control_action(action, method, payload, request.args)
        except (ConfigError, KeyError, TypeError, ValueError) as error:
            return _json(400, {"error": str(error)})

    def _control_action(self, action: str, method: str, payload: Any, args: Any) -> Response:
        unknown = _json(404, {"error": f"unknown control {method} /_emulator/{action}"})
        if method not in CONTROL_METHODS:  # werkzeug lets HEAD match every GET rule; controls answer no HEAD
            return unknown
        try:
            endpoint, _ = CONTROL_ROUTES.bind("emulator").match(f"/{action}", method=method)
        except HTTPException:
            return unknown
        handler: Callable[[Any, Any], Response] = getattr(self, f"_control_{endpoint}")
        return handler(payload, args)

    def _control_info(self, payload: Any, args: Any) -> Response:
        return _json(200, self.info)

    def _control_config(self, payload: Any, args: Any) -> Response:
        return _json(200, self.state.snapshot())

    def _control_replace_config(self, payload: Any, args: Any) -> Response:
        self.state.replace_config(payload)
        return _json(200, self.state.snapshot())

    def _control_patch_config(self, payload: Any, args: Any) -> Response:
        self.state.patch_config(payload)
        return _json(200, self.state.snapshot())

    def _control_reset(self, payload: Any, args: Any) -> Response:
        self.state.reset()
        if self.aws is not None:
            self.aws.clear_expired()
            self.aws.reset_outbound_federation()
            self.aws.set_clock_offset(0.0)
        return _ok()

    def _control_requests(self, payload: Any, args: Any) -> Response:
        return _json(200, self.state.requests(args.get("endpoint") or None))

    def _control_clear_requests(self, payload: Any, args: Any) -> Response:
        self.state.clear_log()
        return _ok()

    def _control_counters(self, payload: Any, args: Any) -> Response:
        return _json(200, self.state.counters())

    def _control_add_fault(self, payload: Any, args: Any) -> Response:
        return _json(200, self.state.add_fault(payload))

    def _control_clear_faults(self, payload: Any, args: Any) -> Response:
        self.state.clear_faults()
        return _ok()

    def _control_faults(self, payload: Any, args: Any) -> Response:
        with self.state.lock:
            return _json(200, [self.state.describe_fault(r) for r in self.state.faults])

    def _control_move_clock(self, payload: Any, args: Any) -> Response:
        state = self.state
        with state.lock:
            if "offset_seconds" in payload:
                state.clock_offset = float(payload["offset_seconds"])
            state.clock_offset += float(payload.get("advance_seconds", 0))
        if self.aws is not None:
            self.aws.set_clock_offset(state.clock_offset)
        return self._control_clock(payload, args)

    def _control_clock(self, payload: Any, args: Any) -> Response:
        return _json(200, {"now": self.state.now(), "offset_seconds": self.state.clock_offset})

    def _control_service_account_keys(self, payload: Any, args: Any) -> Response:
        from . import oauth2

        return _json(200, oauth2.create_key(self.state, str(payload["email"]), f"{self.url}/token"))

    def _control_revoke_tokens(self, payload: Any, args: Any) -> Response:
        self.state.revoke_tokens()
        return _ok()

    def _control_aws_expire(self, payload: Any, args: Any) -> Response:
        if self.aws is None:
            return _no_aws()
        self.aws.expire_access_key(str(payload["access_key_id"]))
        return _ok()

    def _control_aws_outbound_federation(self, payload: Any, args: Any) -> Response:
        return self._outbound_federation(payload, args, change=False)

    def _control_set_aws_outbound_federation(self, payload: Any, args: Any) -> Response:
        return self._outbound_federation(payload, args, change=True)

    def _outbound_federation(self, payload: Any, args: Any, change: bool) -> Response:
        if self.aws is None:
            return _no_aws()
        account_id = str(payload.get("account_id") or args.get("account_id") or self.aws.trusted_account_id)
        if change:
            if payload["enabled"]:
                self.aws.enable_outbound_federation(account_id)
            else:
                self.aws.disable_outbound_federation(account_id)
        return _json(200, {"account_id": account_id, "issuer": self.aws.issuer_url(account_id),
                           "enabled": self.aws.outbound_federation_enabled(account_id)})


def _require(request: Request, method: str) -> None:
    if request.method != method:
        raise errors.google_error(405, "METHOD_NOT_ALLOWED", "Method not allowed")


def _ok() -> Response:
    return _json(200, {"ok": True})


def _no_aws() -> Response:
    return _json(409, {"error": "no emulated AWS attached"})


def _with_bad_expiry(reply: Response) -> Response:
    """The same answer (its token stays live) with an expiry no client can parse."""
    body = json.loads(reply.get_data())
    for name in ("expires_in", "expireTime"):
        if name in body:
            body[name] = "soon"
    return _json(reply.status_code, body,
                 {k: v for k, v in reply.headers.items() if k not in ("Content-Type", "Content-Length")})


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
