"""The fixtures and helpers that more than one test directory uses, in one module: the root ``conftest.py`` lists it
in ``pytest_plugins``, so tests request these fixtures by name and import the helpers from here, never from another
``conftest.py`` or a test module.

The emulated clouds' own fixtures (``emulator``, ``control``, ...) come from
``airflow_provider_gcp_wif.testing.pytest_plugin``.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import pathlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from airflow_provider_gcp_wif.constants import ALLOWED_HOSTS_ENV

if TYPE_CHECKING:  # tests.airflow_process imports wait_until from here
    from tests.airflow_process import Component

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, poll: float = 0.05) -> T:
    """``condition()``'s first truthy result, asking every ``poll`` seconds for at most ``timeout`` seconds; its last
    (falsy) result when time runs out, for the caller to assert on with its own message. The tests' one way to wait
    for something observable (a process ended, a server answering, a fault fired), rather than a guessed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(poll)

# -- the core's emulated-cloud fixtures (tests/core, tests/cli, tests/reliability) ---------------------------------


TESTS = pathlib.Path(__file__).resolve().parent
#: The test directories whose every test starts and ends with an empty credential cache (the core's emulated-cloud
#: fixtures below are theirs); the others (tests/airflow's wif_env clears it itself) ask for ``fresh_cache``.
FRESH_CACHE_DIRECTORIES = ("core", "cli", "reliability")


@pytest.fixture
def fresh_cache():
    """An empty credential cache before and after the test."""
    from airflow_provider_gcp_wif import credentials as wif_credentials

    wif_credentials.clear_cache()
    yield
    wif_credentials.clear_cache()


@pytest.fixture(autouse=True)
def _every_test_has_a_fresh_cache(request):
    """``fresh_cache`` for every test of :data:`FRESH_CACHE_DIRECTORIES`; nothing for the others."""
    path = request.path.resolve()
    if any(path.is_relative_to(TESTS / directory) for directory in FRESH_CACHE_DIRECTORIES):
        request.getfixturevalue("fresh_cache")


@pytest.fixture
def aws_env(emulator, monkeypatch):
    """boto3's default chain = the fixture IAM user's static keys; AWS STS = moto (AWS_ENDPOINT_URL_STS); the
    deployment's endpoint allow-list = the emulator's loopback host (loopback is admitted only when listed)."""
    info = emulator.info
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, emulator_hosts(info))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", info["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", info["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", info["aws_region"])
    monkeypatch.setenv("AWS_REGION", info["aws_region"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", info["aws_endpoint"])
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return info


def emulator_hosts(info) -> str:
    """What a deployment running the emulator lists in ``[gcp_wif] allowed_endpoint_hosts``: the emulator's host."""
    return info["env"][ALLOWED_HOSTS_ENV]


def make_settings(info, **extras) -> Any:
    """A ``WifSettings`` pointing at the emulated clouds of ``info`` (no retries), changed by ``extras``."""
    from airflow_provider_gcp_wif.config import WifSettings

    base = {
        "project_number": info["project_number"],
        "pool_id": info["pool_id"],
        "provider_id": info["provider_id"],
        "impersonation_chain": info["service_account"],
        "sts_endpoint": info["sts_endpoint"],
        "iam_endpoint": info["iam_endpoint"],
        "num_retries": 0,
    }
    base.update(extras)
    return WifSettings.from_extras({k: v for k, v in base.items() if v is not None},
                                   allowed_endpoint_hosts=emulator_hosts(info))


@pytest.fixture
def seed_env(aws_env, monkeypatch):
    """The seed README's variables, pointed at the emulated clouds (AWS through boto3's own AWS_ENDPOINT_URL_STS)."""
    values = {
        "GCP_PROJECT_NUMBER": aws_env["project_number"],
        "GCP_WORKLOAD_ID": aws_env["pool_id"],
        "GCP_WORKLOAD_PROVIDER": aws_env["provider_id"],
        "GCP_SERVICE_ACCOUNT_EMAIL": aws_env["service_account"],
        "AWS_ACCOUNT_ID": aws_env["aws_account_id"],
        "AWS_ROLE_NAME": "wif-role",
        "AWS_REGION": aws_env["aws_region"],
        "GCP_WIF_STS_ENDPOINT": aws_env["sts_endpoint"],
        "GCP_WIF_IAM_ENDPOINT": aws_env["iam_endpoint"],
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def settings_for(aws_env):
    return lambda **extras: make_settings(aws_env, **extras)


@pytest.fixture
def role_supplier(aws_env):
    """The fixture role `wif-role`, assumed with the static keys (the identity the default fixture binds)."""
    from airflow_provider_gcp_wif.supplier import Boto3Supplier
    from airflow_provider_gcp_wif.token_service import assume_role_session

    def make(role_arn: str | None = None) -> Boto3Supplier:
        arn = role_arn or aws_env["role_arn"]
        return Boto3Supplier(lambda: assume_role_session(arn, region=aws_env["aws_region"]), identity_key=f"role:{arn}",
                             description=f"role {arn}")

    return make


@pytest.fixture
def user_supplier(aws_env):
    """The fixture IAM user's static keys, as they are (no role)."""
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

    return lambda: Boto3Supplier.default_chain()


@contextlib.contextmanager
def loopback_server(handler: Any) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving ``handler`` (a request handler class or factory) in a thread; yields its
    base URL (``http://127.0.0.1:<port>``) and shuts it down afterwards."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextlib.contextmanager
def listening_decoy() -> Iterator[tuple[int, list[bytes]]]:
    """A listening socket on loopback standing in for a host a bad setting could point at; yields its port and the
    list of whatever reached it (which the tests expect to stay empty)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                received.append(conn.recv(65536))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        stop.set()
        thread.join(2)
        server.close()


def endpoint_counts(emulator) -> tuple[int, int]:
    """(STS exchanges, generateAccessToken calls) in the emulator's request log, failed ones included."""
    counters = emulator.control.counters()
    return counters.get("sts", 0), counters.get("iam.generateAccessToken", 0)


# -- the jwt route: AWS JWT → Google OIDC provider → impersonation (tests/core, tests/airflow, tests/reliability) -----

JWT_PROVIDER = "aws-jwt"


def _pool_name(info) -> str:
    return f"projects/{info['project_number']}/locations/global/workloadIdentityPools/{info['pool_id']}"


def jwt_provider(control, info, **oidc_changes):
    """What `gcp-wif setup --federation jwt` creates, beside the fixture's AWS provider: an OIDC provider trusting
    the AWS account's issuer, google.subject = the JWT's sub (the role's IAM ARN), a condition pinning account and
    role, and the role's principalSet bound to the service account."""
    role = info["role_arn"]
    oidc = {"issuer_uri": info["aws_issuer_url"], "allowed_audiences": [], "jwks_json": None, **oidc_changes}
    control.set_provider(
        provider_id=JWT_PROVIDER, oidc=oidc, disabled=False,
        attribute_mapping={"google.subject": "assertion.sub", "attribute.aws_role": "assertion.sub",
                           "attribute.aws_account": "assertion['https://sts.amazonaws.com/'].aws_account"},
        attribute_condition=(f"assertion['https://sts.amazonaws.com/'].aws_account=='{info['aws_account_id']}' && "
                             f"assertion.sub=='{role}'"))
    control.add_binding(info["service_account"], "roles/iam.workloadIdentityUser",
                        f"principalSet://iam.googleapis.com/{_pool_name(info)}/attribute.aws_role/{role}")


def sts_model_without_get_web_identity_token(directory: pathlib.Path) -> None:
    """botocore's own STS model minus GetWebIdentityToken, where botocore's loader looks first (AWS_DATA_PATH):
    what the botocore of MWAA 2.9.2-2.11.0 and 3.0.6 (1.34-1.39) holds."""
    import botocore

    source = pathlib.Path(botocore.__file__).parent / "data" / "sts" / "2011-06-15"
    target = directory / "sts" / "2011-06-15"
    target.mkdir(parents=True)
    name = next(p for p in source.iterdir() if p.name.startswith("service-2.json"))
    raw = gzip.decompress(name.read_bytes()) if name.suffix == ".gz" else name.read_bytes()
    model = json.loads(raw)
    del model["operations"]["GetWebIdentityToken"]
    (target / "service-2.json").write_text(json.dumps(model))


@pytest.fixture
def jwt_settings(emulator, aws_env, settings_for):
    jwt_provider(emulator.control, aws_env)
    return settings_for(provider_id=JWT_PROVIDER, federation="jwt")


# -- Airflow (tests/airflow, tests/reliability, tests/cli) ---------------------------------------------------------


@pytest.fixture(scope="module")
def plugin_loaded():
    """What every Airflow process does at start-up: import the `airflow.plugins` entry point's module (for the test
    modules that use Airflow's Google hooks in this process)."""
    from importlib.metadata import entry_points

    (plugin,) = [ep for ep in entry_points(group="airflow.plugins") if ep.name == "gcp_wif"]
    plugin.load()


@pytest.fixture
def wif_env(emulator, monkeypatch, tmp_path):
    """The emulator's connections and settings in this process's environment, as a deployment would have them."""
    from airflow_provider_gcp_wif import credentials as wif_credentials

    wif_credentials.clear_cache()
    info = emulator.info
    for key, value in info["env"].items():
        monkeypatch.setenv(key, value)
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield info
    wif_credentials.clear_cache()


@pytest.fixture
def components() -> Iterator[list[Component]]:
    """A list to append started :class:`Component` s to; all are stopped (process groups killed) afterwards."""
    from tests.airflow_process import stop_components

    started: list[Component] = []
    try:
        yield started
    finally:
        stop_components(started)


# -- every test, as a fresh task process: Airflow's secrets masker without the patterns of earlier tests ---------

_MASKER_MODULES = ("airflow._shared.secrets_masker.secrets_masker", "airflow.sdk.execution_time.secrets_masker",
                   "airflow.utils.log.secrets_masker")


@pytest.fixture(autouse=True)
def _fresh_secrets_masker() -> Iterator[None]:
    """After each test, Airflow's secrets masker forgets the patterns it was given (and our announcer the values it
    announced, so the next test's are announced again). Airflow's masker keeps every pattern for the life of the
    process and recompiles one regex from all of them on each addition: across the ~2,000 tests of one pytest
    process, that made every later exchange pay for every earlier test's secrets (issue #22 measures it). A task is a
    fresh process; each test now starts like one. Nothing is imported here that the test did not import."""
    yield
    import sys

    for name in _MASKER_MODULES:
        module = sys.modules.get(name)
        factory = getattr(module, "_secrets_masker", None) if module else None
        if factory is None:
            continue
        try:
            masker = factory()
        except Exception:  # noqa: BLE001 - a masker that was never configured has nothing to forget
            continue
        reset = getattr(masker, "reset_masker", None)
        if reset is not None:
            reset()
    masking = sys.modules.get("airflow_provider_gcp_wif.masking")
    if masking is not None:
        masking._announced.clear()
