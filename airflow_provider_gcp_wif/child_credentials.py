"""Child processes get a ``gcp_wif`` connection's identity without an AWS secret in their environment.

Stock callers (Beam/Dataflow runners, gcloud, Dataproc on GKE) spawn their children with this process's environment
and expect ``GOOGLE_APPLICATION_CREDENTIALS``. :func:`credential_file` writes an external-account file
(:func:`external_account_config`) whose AWS credentials (or, with ``federation: jwt``, whose AWS JWT) come from a
loopback endpoint of this process (:func:`credential_endpoint`), and sets the file's path and a few non-secret
variables in ``os.environ`` for the duration through an overlay that restores the environment exactly
(:func:`patched_environ`, with its fork handler). :func:`authorized_gcloud` logs a private gcloud configuration in
with that file.

The core: no Airflow import. The functions take the connection's :class:`~airflow_provider_gcp_wif.config.WifSettings`
and a callable returning its process-wide shared credentials (``WifBinding.credentials`` on the Airflow side).
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from airflow_provider_gcp_wif import forks
from airflow_provider_gcp_wif.constants import (
    AWS_SUBJECT_TOKEN_TYPE,
    JWT_SUBJECT_TOKEN_TYPE,
    REGIONAL_CRED_VERIFICATION_URL,
)
from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.config import WifSettings
    from airflow_provider_gcp_wif.credentials import WifCredentials
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

#: What the child-process functions call for the connection's process-wide shared credentials.
SharedCredentials = Callable[[], "WifCredentials"]

#: The role name the loopback credential endpoint reports (google-auth asks for it, then for its credentials).
ENDPOINT_ROLE_NAME = "gcp-wif"
#: Seconds the loopback credential endpoint gives a connection to send its whole request before it closes it
#: (google-auth, gcloud and the Java library send their request at once).
ENDPOINT_READ_TIMEOUT_SECONDS = 10.0
#: Connections the loopback credential endpoint serves at once, one thread each; more wait to be accepted.
ENDPOINT_MAX_CONNECTIONS = 16


# -- the loopback credential endpoint -----------------------------------------------------------------------------

class _RequestDeadlineReader(io.RawIOBase):
    """A connection's socket read until one deadline: each read waits at most until ``deadline`` (on
    ``time.monotonic``), and once it has passed raises ``TimeoutError`` (what ``BaseHTTPRequestHandler`` already
    takes for a read timeout), so a client sending its request a byte at a time cannot hold the connection longer
    than a client sending nothing."""

    def __init__(self, connection: Any, deadline: float) -> None:
        super().__init__()
        self._connection = connection
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive whole before its deadline")
        self._connection.settimeout(remaining)
        return int(self._connection.recv_into(buffer))


class _BoundedThreadingHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that serves at most ``max_connections`` connections at once: the accepting
    thread waits for a free slot before it starts a thread for the connection it accepted, and meanwhile accepts
    nothing else (further connections wait in the listen backlog)."""

    daemon_threads = True
    request_queue_size = 64  # the connections that wait for a slot wait here, not in SYN retries (default 5)

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int) -> None:
        super().__init__(address, handler)
        self._max_connections = max(1, max_connections)
        self._serving = 0
        self._stopping = False
        self._slots = threading.Condition()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        # Runs on the accepting thread before process_request starts a thread: take a slot, or wait for one.
        with self._slots:
            while self._serving >= self._max_connections and not self._stopping:
                self._slots.wait()
            if self._stopping:
                return False
            self._serving += 1
            return True

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._free_slot()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._free_slot()

    def _free_slot(self) -> None:
        with self._slots:
            self._serving -= 1
            self._slots.notify()

    def stop_waiting_for_slots(self) -> None:
        """Let an accepting thread that waits for a slot go (it closes that connection), so shutdown() returns."""
        with self._slots:
            self._stopping = True
            self._slots.notify_all()


@contextlib.contextmanager
def credential_endpoint(supplier: Boto3Supplier, web_identity_token: Callable[[], str] | None = None, *,
                        read_timeout: float = ENDPOINT_READ_TIMEOUT_SECONDS,
                        max_connections: int = ENDPOINT_MAX_CONNECTIONS) -> Iterator[str]:
    """Serve ``supplier``'s current AWS credentials to child processes, in the EC2 instance-metadata format
    that google-auth's (and gcloud's, and the Java library's) ``aws1`` credential source reads from its
    ``url``; yields that URL.

    With ``web_identity_token`` (``federation: jwt``) it serves that JWT instead, as ``{"token": JWT}`` for an
    ``identity_pool`` credential source with a ``url`` and a ``json`` format, and yields that URL; the AWS
    credentials are then not served at all.

    The child then needs no AWS secret in its environment, so none is put into ``os.environ`` (which every
    thread and every later child of this process would share). The endpoint listens on ``127.0.0.1`` only,
    on a free port, for the duration of the ``with`` block; every path lies under a random 256-bit
    capability (``secrets.token_urlsafe``), compared in constant time, so only a process that can read the
    URL (the 0600 credential file, or this process's memory) can ask; anything else gets 404. Each answer
    is read from the boto3 session at that moment, so a long child (a Dataflow launch, a gcloud session)
    keeps working across the session's own refresh of assumed-role credentials. Nothing is logged (the
    path holds the capability).

    Any local user can connect, capability or not, so connections are bounded: a connection whose whole
    request has not arrived ``read_timeout`` seconds after it was accepted is closed (however it trickles in:
    one deadline per connection, not per read), and at most ``max_connections`` are served at once (one thread
    each); further connections wait in the listen backlog until a slot frees, so idle or trickling connections
    cost no more than ``max_connections`` threads, and each holds its slot for at most ``read_timeout`` before
    its request is read. Answering (which may refresh the AWS credentials) is not under that deadline.
    """
    capability = secrets.token_urlsafe(32)
    base = f"/{capability}/latest/meta-data/iam/security-credentials"

    jwt_path = f"/{capability}/web-identity-token"

    class Handler(BaseHTTPRequestHandler):
        def setup(self) -> None:
            super().setup()
            deadline = time.monotonic() + read_timeout
            self.rfile = io.BufferedReader(_RequestDeadlineReader(self.connection, deadline))

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            if web_identity_token is not None:
                if not hmac.compare_digest(path.encode(), jwt_path.encode()):
                    self._answer(404, "text/plain", "not found")
                    return
                try:
                    token = web_identity_token()
                except (WifExchangeError, WifConfigError) as err:  # names the AWS step and the fix; no secret
                    self._answer(500, "text/plain", str(err))
                    return
                except Exception as err:  # noqa: BLE001 - the child gets a 500, not a dropped connection
                    self._answer(500, "text/plain", f"{supplier.description}: {type(err).__name__}")
                    return
                self._answer(200, "application/json", json.dumps({"token": token}))
            elif hmac.compare_digest(path.encode(), base.encode()):
                self._answer(200, "text/plain", ENDPOINT_ROLE_NAME)
            elif hmac.compare_digest(path.encode(), f"{base}/{ENDPOINT_ROLE_NAME}".encode()):
                try:
                    aws = supplier.get_aws_security_credentials(None, None)
                except WifExchangeError as err:  # says which AWS source failed and how to fix it; no secret
                    self._answer(500, "text/plain", str(err))
                    return
                except Exception as err:  # noqa: BLE001 - the child gets a 500, not a dropped connection
                    self._answer(500, "text/plain", f"{supplier.description}: {type(err).__name__}")
                    return
                body = {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": aws.access_key_id,
                        "SecretAccessKey": aws.secret_access_key}
                if aws.session_token:
                    body["Token"] = aws.session_token
                self._answer(200, "application/json", json.dumps(body))
            else:
                self._answer(404, "text/plain", "not found")

        def _answer(self, status: int, content_type: str, text: str) -> None:
            self.connection.settimeout(read_timeout)  # the request's deadline left it whatever time remained
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    Handler.timeout = read_timeout  # StreamRequestHandler sets it on each connection's socket (for the answer)
    server = _BoundedThreadingHTTPServer(("127.0.0.1", 0), Handler, max_connections)
    thread = threading.Thread(target=server.serve_forever, name="gcp-wif-credential-endpoint", daemon=True)
    thread.start()
    owner = os.getpid()
    try:
        yield f"http://127.0.0.1:{server.server_port}{jwt_path if web_identity_token is not None else base}"
    finally:
        if os.getpid() == owner:
            server.stop_waiting_for_slots()
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        else:  # a forked child leaving the block: the serving thread is the parent's (shutdown() would wait
            server.socket.close()  # for it forever); only the child's copy of the socket is closed


# -- the credential file ------------------------------------------------------------------------------------------


def external_account_config(settings: WifSettings, credentials_url: str | None = None) -> dict[str, Any]:
    """An ADC file that google-auth and gcloud read on their own: the exchange, with AWS credentials from
    ``credentials_url`` (google-auth's ``aws1`` source asks it in the EC2 metadata format, see
    :func:`credential_endpoint`), or from the environment's ``AWS_ACCESS_KEY_ID`` & co. without it."""
    s = settings
    credential_source: dict[str, Any] = {
        "environment_id": "aws1",
        "regional_cred_verification_url": REGIONAL_CRED_VERIFICATION_URL,
    }
    if credentials_url:
        credential_source["url"] = credentials_url
    subject_token_type = AWS_SUBJECT_TOKEN_TYPE
    if s.federation == "jwt":
        # federation: jwt — the child reads the AWS JWT from the loopback endpoint (identity_pool, url source).
        credential_source = {"url": credentials_url or "", "format": {"type": "json",
                                                                      "subject_token_field_name": "token"}}
        subject_token_type = JWT_SUBJECT_TOKEN_TYPE
    external: dict[str, Any] = {
        "type": "external_account",
        "audience": s.audience,
        "subject_token_type": subject_token_type,
        "token_url": s.sts_endpoint,
        "credential_source": credential_source,
        "universe_domain": s.universe_domain,
    }
    if s.quota_project_id:
        external["quota_project_id"] = s.quota_project_id
    if not s.service_account:
        return external
    if s.delegates:
        # google-auth and gcloud read delegates only from impersonated_service_account files, whose source
        # cannot be an external account: a child process cannot be given a chain.
        raise WifConfigError(
            "impersonation_chain",
            f"the chain {', '.join(s.impersonation_chain)} has delegates, which Google's credential files "
            "cannot carry to a child process (Dataflow/Beam runners, gcloud).",
            f"for such tasks, bind the federated identity to {s.service_account} directly "
            "(roles/iam.workloadIdentityUser) and set impersonation_chain to that account alone.",
            conn_id=s.conn_id,
        )
    external["service_account_impersonation_url"] = s.impersonation_url(s.service_account)
    external["service_account_impersonation"] = {"token_lifetime_seconds": s.lifetime_seconds}
    return external


@contextlib.contextmanager
def credential_file(settings: WifSettings, credentials: SharedCredentials) -> Generator[str, None, None]:
    """Give child processes this connection's identity for the duration: an ADC file (0600, in a private 0700
    directory) named by ``GOOGLE_APPLICATION_CREDENTIALS``, whose AWS credentials come from a loopback
    endpoint of this process; both are gone afterwards. ``credentials`` returns the connection's process-wide
    shared credentials (called only once the settings are known to fit a credential file).

    Stock callers (Beam/Dataflow runners, gcloud, Dataproc on GKE) spawn their children with this process's
    environment, so the file's path has to be in ``os.environ`` (the stock Google connection does the same).
    What must not be there is an AWS secret: ``os.environ`` belongs to every thread, every later child and
    every later boto3 default-chain session of the process. So:

    * no AWS secret enters ``os.environ``: the child's ``credential_source`` reads them from
      :func:`credential_endpoint` (loopback, random capability in the URL, open only while the context is),
      which also keeps a long child working across the refresh of assumed-role credentials. Any
      ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` the process has are hidden from
      ``os.environ`` for the duration, because google-auth reads those before its ``url`` and the child would
      sign with the wrong identity;
    * the remaining, non-secret variables (the file's path, region, project, gcloud's config directory) are set
      by :func:`patched_environ`: contexts of different threads run one after another (a per-process
      re-entrant lock), so a child sees its own context's values only, and afterwards ``os.environ`` is
      exactly what it was (variables that were absent are absent again). The price: in one process, a thread
      opening a context waits while another thread's is open; processes (one task each) are not affected.
      ``service_file_as_context`` enters on the event loop's thread: coroutines of one loop re-enter the lock
      (their exits restore exactly, in any order) but share the one environment, as stock code does.

    With ``federation: jwt`` the file is an ``identity_pool`` one instead: its ``url`` source (``json`` format,
    field ``token``) is the same kind of loopback endpoint, serving the current AWS JWT (the shared, cached one);
    no AWS credential is served at all.

    Alternatives weighed: a ``file`` credential source would put the secrets on disk; an ``executable`` source
    returns only OIDC/SAML subject tokens (not a signed AWS request) and needs
    ``GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`` in the child's environment; per-child environments are
    impossible because stock callers spawn the children.
    """
    external_account_config(settings)  # fails on a delegate chain before anything is started
    # The process-wide credentials' AWS identity source (the hooks of one connection share it, and with it one
    # AWS session and one cached JWT), not a hook's own: no AssumeRole or JWT per hook and context.
    supplier = credentials().supplier
    region = supplier.get_aws_region(None, None)
    supplier.get_aws_security_credentials(None, None)  # an AWS failure is the parent's error, named
    jwt = _web_identity_token(settings, credentials)
    if jwt is not None:
        jwt()  # likewise GetWebIdentityToken's (feature disabled, permission, botocore too old)
    directory = tempfile.mkdtemp(prefix="gcp-wif-")
    path = os.path.join(directory, "external-account.json")
    owner = os.getpid()
    try:
        with credential_endpoint(supplier, _web_identity_token(settings, credentials)) as credentials_url:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(external_account_config(settings, credentials_url), handle)
            environment: dict[str, str | None] = {
                "GOOGLE_APPLICATION_CREDENTIALS": path,
                "AWS_ACCESS_KEY_ID": None,
                "AWS_SECRET_ACCESS_KEY": None,
                "AWS_SESSION_TOKEN": None,
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                "CLOUDSDK_CORE_PROJECT": settings.project,
                "GOOGLE_CLOUD_PROJECT": settings.project,
                # A child's stock google-auth would log its subject token, the endpoint's AWS credentials and
                # the tokens it gets, unredacted (masking.redact_google_auth_logs works in this process only).
                "GOOGLE_SDK_PYTHON_LOGGING_SCOPE": None,
            }
            if any(os.environ.get(name) for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
                # The endpoint is on loopback: a proxy could not reach it (and must not see its capability).
                for name in ("NO_PROXY", "no_proxy"):
                    environment[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1"]))
            with patched_environ(environment):
                yield path
    finally:
        if os.getpid() == owner:  # a forked child leaving the context must not remove the parent's file
            shutil.rmtree(directory, ignore_errors=True)


def _web_identity_token(settings: WifSettings, credentials: SharedCredentials) -> Callable[[], str] | None:
    """``federation: jwt``: what the loopback endpoint serves the child (the shared, cached JWT supplier)."""
    if settings.federation != "jwt":
        return None
    from airflow_provider_gcp_wif.chain import web_identity_token_supplier

    jwt = web_identity_token_supplier(settings, credentials().supplier)
    return lambda: jwt.get_subject_token(None, None)


@contextlib.contextmanager
def authorized_gcloud(settings: WifSettings, credentials: SharedCredentials) -> Generator[None, None, None]:
    """A private gcloud configuration logged in with the external-account file (``gcloud auth login
    --cred-file``, which gcloud supports for workload identity federation)."""
    with (
        credential_file(settings, credentials) as path,
        tempfile.TemporaryDirectory(prefix="gcp-wif-gcloud-") as config_dir,
        patched_environ({"CLOUDSDK_CONFIG": config_dir}),
    ):
        subprocess.check_output(["gcloud", "auth", "login", f"--cred-file={path}", "--quiet"])
        if settings.project:
            subprocess.check_output(["gcloud", "config", "set", "core/project", settings.project])
        yield


# -- the os.environ overlay ---------------------------------------------------------------------------------------

# The environment overlays of open child-process contexts (see credential_file): one lock per process,
# the values each variable had before the first open overlay set it, and the open overlays in the order they opened.
_environ_lock = threading.RLock()
_environ_before: dict[str, str | None] = {}
_environ_overlays: list[dict[str, str | None]] = []
_overlay_threads: dict[int, int] = {}  # id(overlay) -> the thread that opened it


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str | None]) -> Generator[None, None, None]:
    """Set (or, for ``None``, unset) variables for the duration; afterwards each is exactly what it was before.

    Holds a per-process re-entrant lock for the duration, so overlays of different threads never overlap. Within
    one thread (nested contexts, or coroutines of one event loop that close them in any order), every variable is
    recomputed on exit from the value it had before the first overlay and the overlays still open, so an
    out-of-order exit restores exactly too.
    """
    overlay = dict(values)
    with _environ_lock:
        for key in overlay:
            _environ_before.setdefault(key, os.environ.get(key))
        _environ_overlays.append(overlay)
        _overlay_threads[id(overlay)] = threading.get_ident()
        try:
            for key, value in overlay.items():
                _set_env(key, value)
            yield
        finally:
            _close_overlays([overlay])


def _close_overlays(closing: list[dict[str, str | None]]) -> None:
    """Drop ``closing`` from the open overlays; their variables get the values of the overlays still open."""
    _environ_overlays[:] = [open_overlay for open_overlay in _environ_overlays
                            if not any(open_overlay is gone for gone in closing)]
    for overlay in closing:
        _overlay_threads.pop(id(overlay), None)
        for key in overlay:
            value = _environ_before.get(key)
            for open_overlay in _environ_overlays:
                value = open_overlay.get(key, value)
            _set_env(key, value)
    if not _environ_overlays:
        _environ_before.clear()


def _environ_after_fork_in_child() -> None:
    """Only the forking thread lives on in a child: overlays other threads had open would never be closed (their
    variables, a credential file about to be deleted, would stay for the child's life) and the lock they held would
    never be released. They are closed here; the forking thread's own overlays (and its hold of the lock) stay."""
    global _environ_lock
    me = threading.get_ident()
    orphaned = [overlay for overlay in _environ_overlays if _overlay_threads.get(id(overlay)) != me]
    if orphaned:
        _close_overlays(orphaned)
    if not _environ_overlays:
        _environ_lock = threading.RLock()


forks.register(forks.CHILD_ENVIRONMENT, _environ_after_fork_in_child)


def _set_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value
