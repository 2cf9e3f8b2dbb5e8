"""``gcp-wif``: the command line.

Subcommands:

* ``token`` prints a Google access token and its expiry (the seed package's use case);
* ``doctor`` runs the exchange step by step (settings, AWS identity, subject length, web identity token (federation
  jwt), STS exchange, impersonation,
  one Google API call) and prints a checklist with Google's reason and the fix for each failure;
* ``setup`` prints the ``gcloud`` commands (or Terraform) that create the pool, the AWS provider restricted to one
  role, the service account and its ``roles/iam.workloadIdentityUser`` binding, and optional org policies;
* ``mwaa-bundle`` writes the ``plugins.zip`` + ``requirements.txt`` pair with which Amazon MWAA installs this
  provider from a wheel (MWAA's documented route for packages that are not on PyPI).

``token`` and ``doctor`` are configured either by an Airflow connection (``--conn-id``; Airflow is imported only
then, and the connection is read the way tasks read it: environment variables, secrets backends, the metadata
database) or by the seed package's environment variables (``GCP_PROJECT_NUMBER``, ``GCP_WORKLOAD_ID``,
``GCP_WORKLOAD_PROVIDER``, ``GCP_SERVICE_ACCOUNT_EMAIL``, ``AWS_ACCOUNT_ID``, ``AWS_ROLE_NAME``, ``AWS_REGION``,
``TOKEN_LIFETIME``, ``TOKEN_SCOPES``, ``GCP_WIF_STS_ENDPOINT``, ``GCP_WIF_IAM_ENDPOINT``).

Exit status: 0 success; 1 a step failed (``doctor``: any check failed); 2 bad settings or usage. Nothing printed
ever contains a token, an AWS secret or a subject token.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import email.parser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.config import WifSettings
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DISTRIBUTION = "airflow-provider-gcp-wif"
SUBJECT_LIMIT_BYTES = 127
MWAA_PLUGINS_DIR = "/usr/local/airflow/plugins"
#: The Python of each Amazon MWAA image (aws/amazon-mwaa-docker-images).
MWAA_IMAGE_PYTHON = {"2.9.2": "3.11", "2.10.1": "3.11", "2.10.3": "3.11", "2.11.0": "3.12", "2.11.2": "3.12",
                     "3.0.6": "3.12", "3.2.1": "3.12", "3.3.1": "3.12"}
#: What every MWAA image has installed besides apache-airflow (its requirements: the Amazon provider, Celery).
MWAA_IMAGE_PACKAGES = ("apache-airflow-providers-amazon",)
MWAA_PLATFORM = "manylinux2014_x86_64"
PLUGIN_MODULE_NAME = "gcp_wif_plugin.py"
PLUGIN_MODULE_SOURCE = '''"""airflow-provider-gcp-wif, plugins-folder route (written by `gcp-wif mwaa-bundle`).

Airflow imports every module of the plugins folder; importing the provider's plugin activates gcp_wif connections
for every stock Google hook in the process. The package's own `airflow.plugins` entry point does the same; Airflow
registers the plugin once whichever route finds it first.
"""

from airflow_provider_gcp_wif.plugin import GcpWifPlugin

__all__ = ["GcpWifPlugin"]
'''

# Google's default attribute mapping for AWS providers, written out so that conditions and bindings can rely on it.
AWS_ROLE_MAPPING = (
    "assertion.arn.contains('assumed-role') ? assertion.arn.extract('{account_arn}assumed-role/') + "
    "'assumed-role/' + assertion.arn.extract('assumed-role/{role_name}/') : assertion.arn"
)
ATTRIBUTE_MAPPING: dict[str, str] = {
    "google.subject": "assertion.arn",
    "attribute.aws_account": "assertion.account",
    "attribute.aws_role": AWS_ROLE_MAPPING,
}
SERVICES = (
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "sts.googleapis.com",
    "cloudresourcemanager.googleapis.com",
)


class UsageError(Exception):
    """A command-line problem that is not a ``gcp_wif`` setting (unknown connection, missing file, ...)."""


# ---------------------------------------------------------------------------------------------------------------
# Where the settings come from: an Airflow connection, or the seed's environment variables
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Source:
    """Validated settings and the AWS identity source, plus how to name them in output."""

    settings: WifSettings
    supplier: Boto3Supplier
    label: str


def airflow_connection(conn_id: str) -> Any:
    """The connection as tasks see it (environment variables, secrets backends, metadata database)."""
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow 2.11
        from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as err:  # AirflowNotFoundException differs between Airflow 2 and 3
        if in_airflow3_task_subprocess():
            raise UsageError(f"connection {conn_id!r} could not be read: {err}. {AIRFLOW3_SUBPROCESS_ADVICE}") from err
        raise UsageError(
            f"connection {conn_id!r} could not be read: {err}. Define it (e.g. AIRFLOW_CONN_"
            f"{conn_id.upper()}='{{\"conn_type\": \"gcp_wif\", \"extra\": {{...}}}}') or check the secrets backend."
        ) from err


#: What to do when the doctor runs in a process a task started (BashOperator) on Airflow 3.
AIRFLOW3_SUBPROCESS_ADVICE = (
    "This is a process started by an Airflow 3 task (e.g. a BashOperator): it has no task context, and the task "
    "SDK gives no process direct access to the metadata database, so a connection stored there (UI, `airflow "
    "connections add`) cannot be read here; connections from environment variables or a secrets backend can. "
    "Run the doctor inside the task instead: `from airflow_provider_gcp_wif.cli import doctor` and call "
    "`doctor(\"CONN_ID\")` in a @task function or PythonOperator callable (it prints the same checklist to the "
    "task log and fails the task when a check fails)."
)


def in_airflow3_task_subprocess() -> bool:
    """Whether this process was started by an Airflow 3 task (BashOperator exports AIRFLOW_CTX_*) and is not the
    task itself (a task process has the supervisor's comms; a child has not)."""
    if "AIRFLOW_CTX_TASK_ID" not in os.environ:
        return False
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    try:
        return Version(version("apache-airflow")) >= Version("3")
    except PackageNotFoundError:
        return False


def load_source(conn_id: str | None) -> Source:
    """Raises ``WifConfigError`` for a bad setting and :class:`UsageError` for a missing/foreign connection."""
    if conn_id:
        connection = airflow_connection(conn_id)
        conn_type = getattr(connection, "conn_type", None)
        if conn_type != "gcp_wif":
            raise UsageError(f"connection {conn_id!r} has type {conn_type!r}, not 'gcp_wif'.")
        from airflow_provider_gcp_wif.integration import WifBinding

        binding = WifBinding.for_hook(conn_id, connection.extra_dejson)
        return Source(binding.settings, binding.supplier, f"connection {conn_id!r}")
    from airflow_provider_gcp_wif.token_service import TokenService

    service = TokenService.from_env()
    return Source(service.settings, service.supplier, "the seed's environment variables")


def _request() -> Any:
    import google.auth.transport.requests

    return google.auth.transport.requests.Request()


# ---------------------------------------------------------------------------------------------------------------
# token
# ---------------------------------------------------------------------------------------------------------------


def cmd_token(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from airflow_provider_gcp_wif.credentials import get_credentials
    from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError
    from airflow_provider_gcp_wif.token_service import rfc3339

    try:
        source = load_source(args.conn_id)
        credentials = get_credentials(source.settings, source.supplier)
        credentials.refresh(_request())
    except (WifConfigError, UsageError) as error:
        print(f"gcp-wif: {one_line(error)}", file=err)
        return EXIT_USAGE
    except WifExchangeError as error:
        print(f"gcp-wif: {one_line(error)}", file=err)
        return EXIT_FAILED
    token, expire_time = credentials.token, rfc3339(credentials.expiry)
    if args.json:
        print(json.dumps({"access_token": token, "expire_time": expire_time}), file=out)
    else:
        print(token, file=out)
        print(expire_time, file=out)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------
# doctor
# ---------------------------------------------------------------------------------------------------------------

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
_MARKS = {OK: "[ OK ]", WARN: "[WARN]", FAIL: "[FAIL]", SKIP: "[SKIP]"}


@dataclass
class Check:
    """One line of the doctor's checklist."""

    name: str
    status: str
    detail: str
    fix: str = ""
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "detail": self.detail, "fix": self.fix or None,
                "seconds": None if self.seconds is None else round(self.seconds, 3)}


def api_base_url(settings: WifSettings) -> str:
    """Where the doctor's sample API call goes: Cloud Resource Manager in the settings' universe; the PSC name that
    matches a ``sts-ENDPOINT.p.<universe>`` STS endpoint; or, for an emulator or another host the deployment
    allows, the STS endpoint's own host."""
    parts = urlsplit(settings.sts_endpoint)
    host = (parts.hostname or "").lower()
    universe = settings.universe_domain
    if host == f"sts.{universe}":
        return f"https://cloudresourcemanager.{universe}"
    if host.startswith("sts-") and host.endswith(f".p.{universe}"):
        return f"{parts.scheme}://cloudresourcemanager-{host[len('sts-'):]}"
    return f"{parts.scheme}://{parts.netloc}"


def _refused_api_url(raw: str, settings: WifSettings) -> str | None:
    """Why ``--api-url`` is refused (the endpoint grammar, the sending libraries' reading, the allow-list), or
    ``None``."""
    from airflow_provider_gcp_wif.config import EndpointRefused, checked_endpoint, parse_allowed_hosts
    from airflow_provider_gcp_wif.integration import allowed_endpoint_hosts  # the environment without Airflow

    try:
        checked_endpoint(raw, allowed=parse_allowed_hosts(allowed_endpoint_hosts()), universe=settings.universe_domain)
    except EndpointRefused as refused:
        return refused.reason
    return None


class Doctor:
    """Runs the exchange one visible step at a time. Steps after a failed one are skipped (they could only fail
    for the same reason); a warning does not stop the run and does not fail it."""

    def __init__(self, conn_id: str | None, *, api_call: bool = True, api_url: str | None = None) -> None:
        self.conn_id = conn_id
        self.api_call = api_call
        self.api_url = api_url
        self.checks: list[Check] = []
        self.source: Source | None = None
        self.caller_arn: str | None = None
        self.credentials: Any = None

    @property
    def failed(self) -> bool:
        return any(check.status == FAIL for check in self.checks)

    def run(self) -> list[Check]:
        steps: list[tuple[str, Callable[[], Check]]] = [
            ("settings", self.check_settings),
            ("AWS identity", self.check_aws_identity),
            ("subject length", self.check_subject_length),
            ("web identity token", self.check_web_identity_token),
            ("STS exchange", self.check_sts_exchange),
            ("impersonation", self.check_impersonation),
            ("API call", self.check_api_call),
        ]
        for name, step in steps:
            if name == "web identity token" and not (self.source and self.source.settings.federation == "jwt"):
                continue  # a step of federation jwt only
            if self.failed:
                self.checks.append(Check(name, SKIP, "not run: an earlier step failed."))
                continue
            started = time.monotonic()
            check = step()
            check.seconds = time.monotonic() - started
            self.checks.append(check)
        return self.checks

    # -- the steps -------------------------------------------------------------------------------------------

    def check_settings(self) -> Check:
        from airflow_provider_gcp_wif.errors import WifConfigError

        try:
            self.source = load_source(self.conn_id)
        except WifConfigError as err:
            where = f" (connection {err.conn_id!r})" if err.conn_id else ""
            return Check("settings", FAIL, f"{err.field}: {err.problem}{where}", err.fix)
        except UsageError as err:
            return Check("settings", FAIL, str(err))
        s = self.source.settings
        google = ", ".join(s.impersonation_chain) if s.impersonation_chain else "none (direct resource access)"
        return Check(
            "settings", OK,
            f"{self.source.label}: audience {s.audience}; impersonation {google}; STS {s.sts_endpoint}; "
            f"AWS identity from {self.source.supplier.description}.",
        )

    def check_aws_identity(self) -> Check:
        from airflow_provider_gcp_wif.errors import WifExchangeError, account_of

        assert self.source is not None
        supplier = self.source.supplier
        try:
            region = supplier.get_aws_region(None, None)
            self.caller_arn = supplier.caller_arn()
        except WifExchangeError as err:
            return Check("AWS identity", FAIL, err.reason, err.fix)
        except Exception as err:  # noqa: BLE001 - botocore's NoCredentialsError, ClientError, endpoint errors
            return Check(
                "AWS identity", FAIL, f"GetCallerIdentity with {supplier.description} failed: {err}",
                f"check {supplier.description}: `aws sts get-caller-identity` must work with the same credentials "
                "(on MWAA: the environment's execution role; elsewhere the AWS connection's keys, role_arn or "
                "profile).",
            )
        assert self.caller_arn is not None
        return Check("AWS identity", OK,
                     f"{self.caller_arn} (account {account_of(self.caller_arn) or '?'}, region {region}).")

    def check_subject_length(self) -> Check:
        from airflow_provider_gcp_wif.credentials import exchange_context
        from airflow_provider_gcp_wif.errors import GoogleAnswer, translate

        assert self.source is not None and self.caller_arn is not None
        if self.source.settings.federation == "jwt":
            return Check("subject length", OK, "checked on the JWT's sub claim (federation jwt), next step.")
        size = len(self.caller_arn.encode())
        if size <= SUBJECT_LIMIT_BYTES:
            return Check("subject length", OK,
                         f"{size} bytes, within Google's {SUBJECT_LIMIT_BYTES}-byte google.subject limit "
                         "(google.subject = assertion.arn, the default mapping).")
        # The same words and fix as Google's own answer (ERRORS.md: sts_mapped_subject_exceeds_127_bytes).
        answer = GoogleAnswer(400, "invalid_request", "The size of mapped attribute google.subject exceeds the "
                              "127 bytes limit.", ())
        error = translate("sts_exchange", answer, exchange_context(self.source.settings, self.source.supplier))
        return Check(
            "subject length", WARN,
            f"the caller ARN is {size} bytes: over Google's {SUBJECT_LIMIT_BYTES}-byte google.subject limit if the "
            "provider maps google.subject=assertion.arn (the default); the STS step shows whether it does.",
            error.fix,
        )

    def check_web_identity_token(self) -> Check:
        """``federation: jwt``: one GetWebIdentityToken (the JWT the STS step then exchanges, cached), and what
        Google's OIDC provider will check in it: audience, issuer, subject size, this host's clock."""
        from airflow_provider_gcp_wif.credentials import jwt_audience, web_identity_token_supplier
        from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError, jwt_claims

        assert self.source is not None
        settings = self.source.settings
        supplier = web_identity_token_supplier(settings, self.source.supplier)
        try:
            token = supplier.get_subject_token(None, None)
        except WifConfigError as err:
            return Check("web identity token", FAIL, f"{err.field}: {err.problem}", err.fix)
        except WifExchangeError as err:
            return Check("web identity token", FAIL, err.reason, err.fix)
        claims = jwt_claims(token)
        audience, issuer, subject = claims.get("aud"), str(claims.get("iss", "?")), str(claims.get("sub", ""))
        audiences = audience if isinstance(audience, list) else [audience]
        if jwt_audience(settings) not in audiences:
            return Check("web identity token", FAIL, f"AWS issued a JWT for {audience!r}, not for "
                         f"{jwt_audience(settings)}.", "report this: the provider asks for that audience.")
        skew = time.time() - float(claims.get("iat", time.time()))
        detail = (f"JWT from issuer {issuer} for {subject} ({len(subject.encode())} bytes), valid until "
                  f"{_utc(claims.get('exp'))}. The Google provider must be an OIDC provider with --issuer-uri={issuer}"
                  f" and allow the audience {jwt_audience(settings)} (the default when allowed audiences are empty).")
        if abs(skew) > 60:
            return Check("web identity token", WARN, f"{detail} This host's clock is {skew:+.0f} s off AWS's "
                         "(iat): Google refuses JWTs issued in the future or expired by its clock.",
                         "sync this host's clock (chrony/NTP; on AWS the Amazon Time Sync Service, 169.254.169.123).")
        if len(subject.encode()) > SUBJECT_LIMIT_BYTES:
            return Check("web identity token", WARN, f"{detail} The subject is over Google's {SUBJECT_LIMIT_BYTES}-"
                         "byte google.subject limit if the provider maps google.subject=assertion.sub.",
                         "map google.subject to something shorter (see `gcp-wif setup --federation jwt`).")
        return Check("web identity token", OK, detail)

    def check_sts_exchange(self) -> Check:
        from airflow_provider_gcp_wif.credentials import build_google_credentials

        assert self.source is not None
        settings = self.source.settings
        self.credentials = build_google_credentials(settings, self.source.supplier)
        federated = self.credentials._source_credentials if settings.impersonation_chain else self.credentials
        failure = self._refresh(federated, "STS exchange")
        if failure:
            return failure
        return Check("STS exchange", OK,
                     f"federated token issued by {urlsplit(settings.sts_endpoint).netloc}{_expiry(federated)}.")

    def check_impersonation(self) -> Check:
        assert self.source is not None
        settings = self.source.settings
        if not settings.impersonation_chain:
            return Check("impersonation", OK, "not configured: the federated token is used directly.")
        failure = self._refresh(self.credentials, "impersonation")
        if failure:
            return failure
        via = f" via {', '.join(settings.delegates)}" if settings.delegates else ""
        return Check("impersonation", OK,
                     f"access token for {settings.service_account}{via}{_expiry(self.credentials)}.")

    def check_api_call(self) -> Check:
        import requests

        assert self.source is not None
        if not self.api_call:
            return Check("API call", SKIP, "not run (--no-api-call).")
        settings = self.source.settings
        project = settings.project or settings.project_number
        base = api_base_url(settings)
        if self.api_url:
            refused = _refused_api_url(self.api_url, settings)
            if refused:
                return Check("API call", FAIL, f"--api-url {refused}; no request was sent (it carries the access "
                             "token).", f"give a plain base URL of a Google endpoint, e.g. {base}, or a host the "
                             "deployment allows in [gcp_wif] allowed_endpoint_hosts.")
            base = self.api_url
        url = f"{base.rstrip('/')}/v1/projects/{project}"
        headers = {"Authorization": f"Bearer {self.credentials.token}"}
        if settings.quota_project_id:
            headers["x-goog-user-project"] = settings.quota_project_id
        try:
            response = requests.get(url, headers=headers, timeout=30)
        except requests.RequestException as err:
            return Check("API call", FAIL, f"GET {url} failed: {type(err).__name__}: {err}",
                         "check network access to Google APIs (or give --api-url for a Private Service Connect "
                         "endpoint), or skip this check with --no-api-call.")
        message = _google_message(response)
        if response.status_code == 200:
            body = _json(response)
            return Check("API call", OK, f"GET {url} -> 200 (project {body.get('projectId', project)}, number "
                                         f"{body.get('projectNumber', '?')}).")
        who = settings.service_account or "the federated principal"
        if response.status_code == 403:
            return Check(
                "API call", WARN,
                f"GET {url} -> 403: Google accepted the token but {who} may not read project {project} "
                f"({message}).",
                f"nothing to fix for WIF; to see this check pass, grant roles/browser on {project} to {who}, or "
                "use --no-api-call.",
            )
        return Check("API call", FAIL, f"GET {url} -> {response.status_code}: {message}",
                     f"Google did not accept the token for {who}: re-run `gcp-wif doctor` and compare the "
                     "endpoints and universe domain in the settings line.")

    # -- helpers ---------------------------------------------------------------------------------------------

    def _refresh(self, credentials: Any, name: str) -> Check | None:
        from airflow_provider_gcp_wif.errors import WifExchangeError

        try:
            credentials.refresh(_request())
        except WifExchangeError as err:
            return Check(name, FAIL, err.reason, err.fix)
        except Exception as err:  # noqa: BLE001 - the checklist names anything else instead of a traceback
            return Check(name, FAIL, f"{type(err).__name__}: {err}", "run with -v for details.")
        return None


def _utc(seconds: Any) -> str:
    try:
        return datetime.datetime.fromtimestamp(float(seconds), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def _expiry(credentials: Any) -> str:
    expiry = getattr(credentials, "expiry", None)
    if expiry is None:
        return ""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    naive = expiry.astimezone(datetime.timezone.utc).replace(tzinfo=None) if expiry.tzinfo else expiry
    return f", expires {naive.strftime('%Y-%m-%dT%H:%M:%SZ')} (in {int((naive - now).total_seconds())} s)"


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _google_message(response: Any) -> str:
    error = _json(response).get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("status") or response.reason)
    if isinstance(error, str):
        return error
    return str(response.reason or "no message")


class DoctorFailed(Exception):
    """Raised by :func:`doctor` when a check failed (a task that runs it fails with the checklist in its log)."""

    def __init__(self, checks: list[dict[str, Any]]) -> None:
        self.checks = checks
        failed = [f"{c['check']}: {c['detail']}" for c in checks if c["status"] == FAIL]
        super().__init__(f"gcp-wif doctor: {len(failed)} check(s) failed: " + "; ".join(failed))


def doctor(conn_id: str | None = None, *, api_call: bool = True, api_url: str | None = None,
           out: TextIO | None = None) -> list[dict[str, Any]]:
    """``gcp-wif doctor`` in this process: the way to run it from a task on Airflow 3, where a task's child process
    (BashOperator) cannot read connections stored in the metadata database. In a ``@task`` function or a
    ``PythonOperator`` callable the connection comes through the task's execution API like any hook's::

        @task
        def check_gcp_wif():
            from airflow_provider_gcp_wif.cli import doctor
            doctor("gcp_wif_default")

    Prints the checklist (to the task log) and returns it as dicts; raises :class:`DoctorFailed` when a check
    failed. Prints no token or secret."""
    runner = Doctor(conn_id, api_call=api_call, api_url=api_url)
    checks = runner.run()
    _print_checklist(runner, conn_id, out or sys.stdout)
    as_dicts = [c.as_dict() for c in checks]
    if runner.failed:
        raise DoctorFailed(as_dicts)
    return as_dicts


def cmd_doctor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    doctor = Doctor(args.conn_id, api_call=not args.no_api_call, api_url=args.api_url)
    checks = doctor.run()
    if checks[0].status == FAIL:  # bad settings: also the one line on stderr that `token` and `setup` print
        print(f"gcp-wif doctor: {one_line(checks[0].detail)}", file=err)
    if args.json:
        print(json.dumps({"ok": not doctor.failed, "checks": [c.as_dict() for c in checks]}, indent=2), file=out)
        return EXIT_FAILED if doctor.failed else EXIT_OK
    return _print_checklist(doctor, args.conn_id, out)


def _print_checklist(doctor: Doctor, conn_id: str | None, out: TextIO) -> int:
    checks = doctor.checks
    what = f"connection {conn_id!r}" if conn_id else "the seed's environment variables"
    print(f"gcp-wif doctor: {what}", file=out)
    width = max(len(c.name) for c in checks)
    for check in checks:
        print(f"{_MARKS[check.status]} {check.name.ljust(width)}  {check.detail}", file=out)
        if check.fix:
            print(f"       {' ' * width}  fix: {check.fix}", file=out)
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    if failed:
        print(f"Result: FAILED ({failed} failed, {warned} warning(s)).", file=out)
        return EXIT_FAILED
    print(f"Result: all checks passed ({warned} warning(s)).", file=out)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------------------------

_AWS_ACCOUNT = re.compile(r"^[0-9]{12}$")
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_ROLE_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-us-gov|aws-cn):iam::(?P<account>[0-9]{12}):role(?P<path>/(?:[^/]+/)*)(?P<name>[^/]+)$"
)
_ORG_ID = re.compile(r"^[0-9]{1,20}$")
_SA_NAME = re.compile(r"^[a-z]([-a-z0-9]{4,28}[a-z0-9])$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_ROLE = re.compile(r"^(roles|projects/[^/]+/roles|organizations/[0-9]+/roles)/[A-Za-z0-9_.]+$")
AWS_PARTITIONS = ("aws", "aws-us-gov", "aws-cn")
#: IAM role paths setup writes into CEL string literals and IAM members: the characters paths use in practice.
_ROLE_PATH = re.compile(r"^/(?:[\w+=,.@-]+/)*$")
FEDERATIONS = ("sigv4", "jwt")
#: The namespace of the AWS-specific claims of a GetWebIdentityToken JWT.
AWS_CLAIMS = "https://sts.amazonaws.com/"
#: What the role's IAM policy lets it ask GetWebIdentityToken for: the provider's own audience only, RS256 (which
#: Google's OIDC providers verify), and at most this many seconds (GetWebIdentityToken's own default).
JWT_SIGNING_ALGORITHM = "RS256"
JWT_MAX_DURATION_SECONDS = 300
JWT_POLICY_NAME = "gcp-wif-web-identity-token"
#: The longest role session name AWS allows: a session ARN is at most this much longer than the role's.
MAX_SESSION_NAME = 64

_SETUP_FLAGS = {
    "project_number": "--project-number",
    "pool_id": "--pool-id",
    "provider_id": "--provider-id",
    "impersonation_chain": "--service-account",
    "project": "--project-id",
    "universe_domain": "--universe-domain",
}
#: The seed's environment variables, as defaults for `gcp-wif setup`'s flags.
SETUP_ENV_DEFAULTS = {
    "project_number": "GCP_PROJECT_NUMBER",
    "pool_id": "GCP_WORKLOAD_ID",
    "provider_id": "GCP_WORKLOAD_PROVIDER",
    "service_account": "GCP_SERVICE_ACCOUNT_EMAIL",
    "aws_account_id": "AWS_ACCOUNT_ID",
    "aws_role_name": "AWS_ROLE_NAME",
}


@dataclass(frozen=True)
class SetupPlan:
    """Everything ``gcp-wif setup`` prints, validated.

    ``service_account`` is ``None`` for direct resource access: the federated identity itself (the role's
    ``principalSet``) is granted roles on the resources and the connection has no ``impersonation_chain``.
    """

    project_id: str
    project_number: str
    pool_id: str
    provider_id: str
    aws_account_id: str
    aws_role_name: str
    service_account: str | None
    organization_id: str | None = None
    lifetime_over_hour: bool = False
    org_restrictions: bool = False
    aws_partition: str = "aws"
    universe_domain: str = "googleapis.com"
    buckets: tuple[str, ...] = ()
    bucket_role: str = "roles/storage.objectAdmin"
    notes: tuple[str, ...] = field(default=())
    #: ``jwt``: AWS outbound identity federation (GetWebIdentityToken JWT -> a Google OIDC provider).
    federation: str = "sigv4"
    #: The AWS account's outbound-federation issuer URL (``jwt``); ``None``: the gcloud script reads it with the AWS
    #: CLI, the Terraform enables the feature and uses the resource's ``issuer_identifier``.
    issuer_uri: str | None = None
    #: The role's IAM path (``/service-role/`` for MWAA's execution roles): part of the JWT's ``sub``.
    role_path: str = "/"

    @property
    def role_arn(self) -> str:
        """``attribute.aws_role`` of the role's sessions under Google's default mapping."""
        return f"arn:{self.aws_partition}:sts::{self.aws_account_id}:assumed-role/{self.aws_role_name}"

    @property
    def jwt(self) -> bool:
        return self.federation == "jwt"

    @property
    def iam_role_arn(self) -> str:
        """The role's IAM ARN, with its path: the ``sub`` of the JWTs GetWebIdentityToken gives its sessions."""
        return f"arn:{self.aws_partition}:iam::{self.aws_account_id}:role{self.role_path}{self.aws_role_name}"

    @property
    def aws_role(self) -> str:
        """The ``attribute.aws_role`` value of the role's sessions: the assumed-role ARN (``sigv4``, Google's
        default AWS mapping), or the role's IAM ARN, which is the JWT's ``sub`` (``jwt``)."""
        return self.iam_role_arn if self.jwt else self.role_arn

    @property
    def direct_access(self) -> bool:
        return self.service_account is None

    @property
    def member(self) -> str:
        from airflow_provider_gcp_wif.errors import pool_name, principal_member

        if self.jwt:
            return f"principalSet:{pool_name(self.project_number, self.pool_id, self.universe_domain)}" \
                   f"/attribute.aws_role/{self.aws_role}"
        return principal_member(self.project_number, self.pool_id, f"{self.role_arn}/SESSION", self.universe_domain)

    @property
    def condition(self) -> str:
        if self.jwt:
            return f"attribute.aws_account=='{self.aws_account_id}' && attribute.aws_role=='{self.aws_role}'"
        return f"attribute.aws_role=='{self.role_arn}'"

    @property
    def long_sessions(self) -> bool:
        """Whether the role's subjects can exceed Google's 127-byte ``google.subject`` limit: session ARNs
        (``sigv4``), or the role's IAM ARN with a long path (``jwt``)."""
        if self.jwt:
            return len(self.iam_role_arn.encode()) > SUBJECT_LIMIT_BYTES
        return len(f"{self.role_arn}/".encode()) + MAX_SESSION_NAME > SUBJECT_LIMIT_BYTES

    @property
    def attribute_mapping(self) -> dict[str, str]:
        """Google's default AWS mapping written out (plus ``attribute.aws_account``); for roles whose session
        ARNs can exceed 127 bytes, a short ``google.subject`` (``account:role_name``) — ``attribute.aws_role``,
        which the condition and the binding use, is Google's default either way."""
        from airflow_provider_gcp_wif.errors import SHORT_SUBJECT_MAPPING

        if self.jwt:
            return self._jwt_attribute_mapping()
        mapping = dict(ATTRIBUTE_MAPPING)
        if self.long_sessions:
            mapping["google.subject"] = SHORT_SUBJECT_MAPPING
        return mapping

    def _jwt_attribute_mapping(self) -> dict[str, str]:
        """From the JWT's claims: ``sub`` is the role's IAM ARN (the same for every session of the role), the
        account is ``https://sts.amazonaws.com/``'s ``aws_account``. ``google.subject`` is ``sub`` unless the role's
        path makes its ARN longer than 127 bytes; then ``account:role_name``, cut out of ``sub`` after the path the
        condition pins (at most 12 + 1 + 64 bytes)."""
        account = f"assertion['{AWS_CLAIMS}'].aws_account"
        subject = "assertion.sub"
        if self.long_sessions:
            subject = f"{account} + ':' + assertion.sub.extract('role{self.role_path}{{role_name}}')"
        return {"google.subject": subject, "attribute.aws_account": account, "attribute.aws_role": "assertion.sub"}

    @property
    def audience(self) -> str:
        return (f"//iam.{self.universe_domain}/projects/{self.project_number}/locations/global/"
                f"workloadIdentityPools/{self.pool_id}/providers/{self.provider_id}")

    @property
    def jwt_audience(self) -> str:
        """The ``aud`` the role asks GetWebIdentityToken for and the OIDC provider allows: the provider's
        resource name as an https URL (what Google accepts when a provider lists no audiences)."""
        return "https:" + self.audience

    def web_identity_token_policy(self) -> dict[str, Any]:
        """The role's IAM policy: GetWebIdentityToken for this provider's audience only (``ForAllValues``: every
        requested audience must be it), signed RS256, for at most :data:`JWT_MAX_DURATION_SECONDS`."""
        return {"Version": "2012-10-17", "Statement": [{
            "Sid": "GcpWifWebIdentityToken", "Effect": "Allow", "Action": "sts:GetWebIdentityToken", "Resource": "*",
            "Condition": {
                "ForAllValues:StringEquals": {"sts:IdentityTokenAudience": self.jwt_audience},
                "StringEquals": {"sts:SigningAlgorithm": JWT_SIGNING_ALGORITHM},
                # A string, as IAM's policy grammar allows for numbers (and moto's validator requires).
                "NumericLessThanEquals": {"sts:DurationSeconds": str(JWT_MAX_DURATION_SECONDS)},
            },
        }]}

    @property
    def policy_parent(self) -> str:
        return f"organizations/{self.organization_id}" if self.organization_id else f"projects/{self.project_id}"

    @property
    def grantee(self) -> str:
        """Who gets roles on resources: the service account, or (direct access) the role's principalSet."""
        return f"serviceAccount:{self.service_account}" if self.service_account else self.member

    def connection_extra(self) -> dict[str, str]:
        extra = {"aws_conn_id": "aws_default", "project_number": self.project_number, "pool_id": self.pool_id,
                 "provider_id": self.provider_id}
        if self.service_account:
            extra["impersonation_chain"] = self.service_account
        extra["project"] = self.project_id
        if self.jwt:
            extra["federation"] = "jwt"
        if self.universe_domain != "googleapis.com":
            extra["universe_domain"] = self.universe_domain
        return extra

    def org_policies(self) -> list[tuple[str, str, list[str]]]:
        """(file name, constraint, values to allow) of the requested org policies."""
        policies = []
        if self.org_restrictions and self.jwt:
            # An OIDC provider is allowed by its issuer URI; the AWS-accounts constraint is for AWS providers only.
            policies.append(("policy-wif-providers.yaml", "iam.workloadIdentityPoolProviders",
                             [self.issuer_uri or ""]))
        elif self.org_restrictions:
            policies.append(("policy-wif-providers.yaml", "iam.workloadIdentityPoolProviders",
                             ["https://sts.amazonaws.com"]))
            policies.append(("policy-wif-aws-accounts.yaml", "iam.workloadIdentityPoolAwsAccounts",
                             [self.aws_account_id]))
        if self.lifetime_over_hour and self.service_account:
            policies.append(("policy-lifetime-extension.yaml",
                             "iam.allowServiceAccountCredentialLifetimeExtension", [self.service_account]))
        return policies


def _setup_value(args: argparse.Namespace, name: str) -> Any:
    value = getattr(args, name)
    if value is None and name in SETUP_ENV_DEFAULTS:
        value = os.environ.get(SETUP_ENV_DEFAULTS[name]) or None
    return value


def build_setup_plan(args: argparse.Namespace) -> SetupPlan:
    """Validate the inputs (through ``WifSettings`` where it has the field); raises ``WifConfigError`` naming the
    command-line flag. Flags left out fall back to the seed's environment variables (:data:`SETUP_ENV_DEFAULTS`)."""
    from airflow_provider_gcp_wif.config import WifSettings
    from airflow_provider_gcp_wif.errors import WifConfigError

    account = _setup_value(args, "aws_account_id")
    role = _setup_value(args, "aws_role_name")
    project_number = _setup_value(args, "project_number")
    pool_id = _setup_value(args, "pool_id") or "airflow-aws"
    provider_id = _setup_value(args, "provider_id") or "aws-provider"
    partition = args.aws_partition
    role_path = "/"
    if not role:
        raise WifConfigError("--aws-role-name", "is required (or set AWS_ROLE_NAME).",
                             "give the role's name (e.g. the MWAA execution role's), or its ARN.")
    if not project_number:
        raise WifConfigError("--project-number", "is required (or set GCP_PROJECT_NUMBER).",
                             "find it with `gcloud projects describe PROJECT_ID --format='value(projectNumber)'`.")
    arn = _ROLE_ARN.match(role)
    if arn:
        if account and account != arn.group("account"):
            raise WifConfigError("--aws-account-id", f"{account!r} disagrees with the role ARN's account "
                                 f"{arn.group('account')!r}.", "give one of them, or make them agree.")
        if partition and partition != arn.group("partition"):
            raise WifConfigError("--aws-partition", f"{partition!r} disagrees with the role ARN's partition "
                                 f"{arn.group('partition')!r}.", "give one of them, or make them agree.")
        account, role, partition = arn.group("account"), arn.group("name"), arn.group("partition")
        role_path = arn.group("path")
    elif role.startswith("arn:"):
        raise WifConfigError("--aws-role-name", f"{role!r} is not an IAM role ARN.",
                             "give arn:<partition>:iam::<account>:role/<name> (partition aws, aws-us-gov or "
                             "aws-cn), or just the role's name.")
    elif "/" in role:
        path, _, role = role.rstrip("/").rpartition("/")  # an IAM path is not part of the assumed-role ARN
        role_path = "/" + path.strip("/") + "/" if path.strip("/") else "/"
    partition = partition or "aws"
    if not account or not _AWS_ACCOUNT.match(account):
        raise WifConfigError("--aws-account-id", f"{account!r} is not a 12-digit AWS account id.",
                             "find it with `aws sts get-caller-identity --query Account`.")
    if not _ROLE_NAME.match(role):
        raise WifConfigError("--aws-role-name", f"{role!r} is not an IAM role name.",
                             "give the role's name (e.g. the MWAA execution role's), or its ARN.")
    federation = getattr(args, "federation", "sigv4") or "sigv4"
    issuer_uri = getattr(args, "issuer_uri", None)
    if federation == "jwt":
        if not _ROLE_PATH.match(role_path):
            raise WifConfigError("--aws-role-name", f"the IAM path {role_path!r} has characters setup does not "
                                 "write into CEL and IAM members.", "use a role whose path has letters, digits and "
                                 "+=,.@_- only.")
        if issuer_uri is not None:
            issuer_uri = _check_issuer_uri(issuer_uri)
        elif args.org_restrictions:
            raise WifConfigError("--issuer-uri", "is needed with --org-restrictions and --federation jwt (the org "
                                 "policy allows the OIDC provider by its issuer).",
                                 "pass the URL `aws iam get-outbound-web-identity-federation-info --query "
                                 "IssuerIdentifier --output text` prints (after `aws iam "
                                 "enable-outbound-web-identity-federation`).")
    elif issuer_uri is not None:
        raise WifConfigError("--issuer-uri", "applies to --federation jwt only.",
                             "add --federation jwt, or drop --issuer-uri.")
    service_account: str | None = None
    if not args.direct_access:
        service_account = (_setup_value(args, "service_account")
                           or f"airflow-wif@{args.project_id}.iam.gserviceaccount.com")
        if "@" not in service_account:
            service_account = f"{service_account}@{args.project_id}.iam.gserviceaccount.com"
        if "," in service_account:
            raise WifConfigError("--service-account", "takes one service account.", "give a single email.")
    elif args.service_account:
        raise WifConfigError("--direct-access", "and --service-account exclude each other.",
                             "direct resource access grants roles to the AWS role itself; drop one of them.")
    elif args.lifetime_over_hour:
        raise WifConfigError("--lifetime-over-hour", "applies to service-account tokens only.",
                             "drop it: federated tokens for direct access live as long as Google STS says.")
    if args.organization_id and not _ORG_ID.match(args.organization_id):
        raise WifConfigError("--organization-id", f"{args.organization_id!r} is not an organization id.",
                             "find it with `gcloud organizations list`.")
    for bucket in args.bucket or []:
        if not _BUCKET.match(bucket.removeprefix("gs://")):
            raise WifConfigError("--bucket", f"{bucket!r} is not a Cloud Storage bucket name.",
                                 "give the bucket's name, e.g. my-data-bucket.")
    if not _ROLE.match(args.bucket_role):
        raise WifConfigError("--bucket-role", f"{args.bucket_role!r} is not an IAM role.",
                             "e.g. roles/storage.objectAdmin or roles/storage.objectViewer.")
    extras = {"project_number": project_number, "pool_id": pool_id, "provider_id": provider_id,
              "project": args.project_id, "universe_domain": args.universe_domain}
    if service_account:
        extras["impersonation_chain"] = service_account
    try:
        # setup only prints: the universe the user names is the one to validate the names against.
        WifSettings.from_extras(extras, allowed_endpoint_hosts=args.universe_domain or "")
    except WifConfigError as err:
        raise WifConfigError(_SETUP_FLAGS.get(err.field, err.field), err.problem, err.fix) from None
    plan = SetupPlan(
        project_id=args.project_id, project_number=project_number, pool_id=pool_id, provider_id=provider_id,
        aws_account_id=account, aws_role_name=role, service_account=service_account,
        organization_id=args.organization_id, lifetime_over_hour=args.lifetime_over_hour,
        org_restrictions=args.org_restrictions, aws_partition=partition,
        universe_domain=args.universe_domain or "googleapis.com",
        buckets=tuple(b.removeprefix("gs://").rstrip("/") for b in args.bucket or []), bucket_role=args.bucket_role,
        federation=federation, issuer_uri=issuer_uri, role_path=role_path,
    )
    notes = []
    if plan.jwt:
        notes.append(
            f"the JWT's sub is the role's IAM ARN with its path ({plan.iam_role_arn}); if the role has a path "
            "(MWAA execution roles: /service-role/), give --aws-role-name as the ARN `aws iam get-role --role-name "
            f"{role} --query Role.Arn --output text` prints."
        )
        if plan.long_sessions:
            notes.append(f"the role's ARN is longer than Google's {SUBJECT_LIMIT_BYTES}-byte google.subject limit, "
                         "so google.subject is mapped to account:role_name (attribute.aws_role, which the condition "
                         "and the binding use, is the full ARN).")
    elif plan.long_sessions:
        notes.append(
            f"sessions of {role} can have ARNs longer than Google's {SUBJECT_LIMIT_BYTES}-byte google.subject limit, "
            "so google.subject is mapped to account:role_name (attribute.aws_role keeps Google's default, which the "
            "condition and the binding use)."
        )
    if partition == "aws-cn" and not plan.jwt:
        notes.append("aws-cn: workers sign GetCallerIdentity for sts.<region>.amazonaws.com.cn (cn-north-1, "
                     "cn-northwest-1); set the connection's aws_region if the AWS connection has none.")
    return dataclasses.replace(plan, notes=tuple(notes))


def _check_issuer_uri(value: str) -> str:
    """An https URL (Google fetches the issuer's discovery document and keys); http only on loopback, for the
    emulated AWS issuer."""
    from urllib.parse import urlsplit

    from airflow_provider_gcp_wif.errors import WifConfigError

    parts = urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not parts.hostname or parts.scheme not in ("https", "http") or (parts.scheme == "http" and not loopback) \
            or parts.query or parts.fragment or any(c in value for c in "\"'` $"):
        raise WifConfigError("--issuer-uri", f"{value!r} is not an https issuer URL.",
                             "give the IssuerIdentifier `aws iam get-outbound-web-identity-federation-info` prints "
                             "(https://<id>.tokens.sts.global.api.aws).")
    return value.rstrip("/")


def _principal_flag(plan: SetupPlan) -> str:
    return f'--member="{plan.member}"'


def render_gcloud(plan: SetupPlan) -> str:
    p = plan
    mapping = ",".join(f"{key}={value}" for key, value in p.attribute_mapping.items())
    pool_flags = f"--project={p.project_id} --location=global"
    who = "the AWS role itself (direct resource access)" if p.direct_access else f"service account {p.service_account}"
    route = " through AWS outbound identity federation (JWT)" if p.jwt else ""
    lines = [
        f"# Keyless access for AWS role {p.iam_role_arn if p.jwt else p.role_arn} to Google Cloud project "
        f"{p.project_id} ({p.project_number}), as {who}{route}.",
        "# Written by `gcp-wif setup`; review, then run with an account that may administer IAM in the project.",
    ]
    if p.jwt:
        lines += _aws_cli_jwt_side(p)
    lines += [
        "",
        "# 1. The APIs of the exchange (STS, IAM Credentials) and of `gcp-wif doctor` (Resource Manager).",
        f"gcloud services enable {' '.join(SERVICES)} --project={p.project_id}",
    ]
    lines += _gcloud_org_policies(p)
    lines += [
        "",
        "# 2. The workload identity pool.",
        f"gcloud iam workload-identity-pools create {p.pool_id} {pool_flags} --display-name=\"Airflow on AWS\"",
        "",
    ]
    if p.jwt:
        lines += [
            f"# 3. The OIDC provider: only JWTs of AWS account {p.aws_account_id}'s issuer for this provider's "
            f"audience, and (attribute condition) only those of role {p.aws_role_name}.",
            f"gcloud iam workload-identity-pools providers create-oidc {p.provider_id} {pool_flags} "
            f"--workload-identity-pool={p.pool_id} --issuer-uri=\"$ISSUER_URI\" "
            f"--allowed-audiences=\"{p.jwt_audience}\" "
            f"--attribute-mapping=\"{mapping}\" --attribute-condition=\"{p.condition}\"",
        ]
    else:
        lines += [
            f"# 3. The AWS provider: only AWS account {p.aws_account_id}, and (attribute condition) only sessions of "
            f"role {p.aws_role_name}.",
            f"gcloud iam workload-identity-pools providers create-aws {p.provider_id} {pool_flags} "
            f"--workload-identity-pool={p.pool_id} --account-id={p.aws_account_id} "
            f"--attribute-mapping=\"{mapping}\" --attribute-condition=\"{p.condition}\"",
        ]
    if p.service_account:
        sa_name, sa_project = p.service_account.split("@", 1)[0], p.service_account.split("@", 1)[1].split(".")[0]
        lines += [
            "",
            "# 4. The service account Airflow's tasks act as.",
            f"gcloud iam service-accounts create {sa_name} --project={sa_project} "
            "--display-name=\"Airflow (keyless, from AWS)\"",
            "",
            "# 5. Let every session of the AWS role (and nothing else) impersonate it.",
            f"gcloud iam service-accounts add-iam-policy-binding {p.service_account} --project={sa_project} "
            f"--role=roles/iam.workloadIdentityUser {_principal_flag(p)}",
        ]
    lines += ["", f"# 6. Grant {'the service account' if p.service_account else 'the AWS role (its principalSet)'} "
              "what your DAGs need" + (":" if p.buckets else ", for example:")]
    for bucket in p.buckets:
        lines.append(f"gcloud storage buckets add-iam-policy-binding gs://{bucket} --member=\"{p.grantee}\" "
                     f"--role={p.bucket_role}")
    if not p.buckets:
        lines.append(f"# gcloud storage buckets add-iam-policy-binding gs://BUCKET --member=\"{p.grantee}\" "
                     "--role=roles/storage.objectAdmin")
    if p.direct_access:
        lines.append("# (Direct access: only APIs that accept federated identities; see Google's list of "
                     "supported products. Others need --service-account.)")
    lines += ["", "# 7. The Airflow connection (any secrets backend works the same way):",
              f"# export AIRFLOW_CONN_GCP_WIF_DEFAULT={shlex.quote(_connection_json(p))}",
              "# then check it from an Airflow worker: gcp-wif doctor --conn-id gcp_wif_default"]
    lines += [f"# Note: {note}" for note in p.notes]
    return "\n".join(lines) + "\n"


def _aws_cli_jwt_side(p: SetupPlan) -> list[str]:
    """AWS CLI steps of ``--federation jwt``: the feature, the issuer URL (into ``$ISSUER_URI``), the role's
    policy."""
    if p.issuer_uri:
        issuer = [f"ISSUER_URI=\"{p.issuer_uri}\""]
    else:
        issuer = ["ISSUER_URI=\"$(aws iam get-outbound-web-identity-federation-info --query IssuerIdentifier "
                  "--output text)\""]
    return [
        "",
        f"# 0. AWS (account {p.aws_account_id}; run with an AWS identity that may administer IAM there).",
        "# 0a. Outbound identity federation on, once per account (it answers FeatureEnabled if it is on already).",
        "aws iam enable-outbound-web-identity-federation",
        "# 0b. The account's issuer URL, which the Google provider will trust.",
        *issuer,
        f"# 0c. Let role {p.aws_role_name} ask STS GetWebIdentityToken for JWTs for this provider's audience only, "
        f"signed {JWT_SIGNING_ALGORITHM}, valid at most {JWT_MAX_DURATION_SECONDS} s.",
        f"cat > {JWT_POLICY_NAME}.json <<'EOF'",
        json.dumps(p.web_identity_token_policy(), indent=2),
        "EOF",
        f"aws iam put-role-policy --role-name {p.aws_role_name} --policy-name {JWT_POLICY_NAME} "
        f"--policy-document file://{JWT_POLICY_NAME}.json",
    ]


def _gcloud_org_policies(p: SetupPlan) -> list[str]:
    lines: list[str] = []
    for file_name, constraint, values in p.org_policies():
        lines += ["", f"# Org policy {constraint} ({_POLICY_WHY[constraint]})."]
        if p.organization_id:
            lines += ["# `allow` ADDS to the organization's allowed values (read and extend): other teams' pools "
                      "and accounts stay allowed.",
                      f"gcloud resource-manager org-policies allow {constraint} {' '.join(values)} "
                      f"--organization={p.organization_id}"]
        else:
            lines += ["# A project policy that MERGES with the organization's (inheritFromParent: true): what the "
                      "organization allows stays allowed. If the project already has its own policy for this "
                      f"constraint, extend it instead: gcloud resource-manager org-policies allow {constraint} "
                      f"{' '.join(values)} --project={p.project_id}",
                      f"cat > {file_name} <<'EOF'", *_policy_yaml(p.policy_parent, constraint, values), "EOF",
                      f"gcloud org-policies set-policy {file_name}"]
    return lines


_POLICY_WHY = {
    "iam.allowServiceAccountCredentialLifetimeExtension": "lets the service account mint tokens for up to 12 h; "
    "needed for lifetime_seconds over 3600",
    "iam.workloadIdentityPoolProviders": "pools may only trust AWS as an external identity provider",
    "iam.workloadIdentityPoolAwsAccounts": "AWS providers may only trust these AWS accounts",
}


def _policy_yaml(parent: str, constraint: str, values: list[str]) -> list[str]:
    return [f"name: {parent}/policies/{constraint}", "spec:", "  inheritFromParent: true", "  rules:",
            "  - values:", "      allowedValues:", *[f"      - \"{value}\"" for value in values]]


def _connection_json(plan: SetupPlan) -> str:
    return json.dumps({"conn_type": "gcp_wif", "extra": plan.connection_extra()})


def _hcl(value: str) -> str:
    """A Terraform string literal (``${`` and ``%{`` would start templates)."""
    escaped = json.dumps(value)
    return escaped.replace("${", "$${").replace("%{", "%%{")


def _tf_name(text: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", text.lower()).strip("_") or "x"


def render_terraform(plan: SetupPlan) -> str:
    p = plan
    mapping_rules = p.attribute_mapping
    width = max(len(key) for key in mapping_rules) + 2
    mapping = "\n".join(f"    {_hcl(key).ljust(width)} = {_hcl(value)}" for key, value in mapping_rules.items())
    services = ", ".join(_hcl(s) for s in SERVICES)
    policies = _terraform_policies(p)
    policy_refs = ", ".join(f"google_org_policy_policy.{name}" for name, _ in policies)
    depends = f"\n  depends_on = [{policy_refs}]" if policies else ""
    blocks = [
        f"# Keyless access for AWS role {p.iam_role_arn if p.jwt else p.role_arn} to Google Cloud project "
        f"{p.project_id} ({p.project_number}){' through AWS outbound identity federation (JWT)' if p.jwt else ''}. "
        "Written by `gcp-wif setup --format terraform`.\n",
        f'''resource "google_project_service" "gcp_wif" {{
  for_each           = toset([{services}])
  project            = {_hcl(p.project_id)}
  service            = each.value
  disable_on_destroy = false
}}
''',
        *_terraform_aws_jwt_side(p),
        *[block for _, block in policies],
        f'''resource "google_iam_workload_identity_pool" "airflow" {{
  project                   = {_hcl(p.project_id)}
  workload_identity_pool_id = {_hcl(p.pool_id)}
  display_name              = "Airflow on AWS"
  depends_on                = [google_project_service.gcp_wif]
}}
''',
        f'''resource "google_iam_workload_identity_pool_provider" "aws" {{
  project                            = {_hcl(p.project_id)}
  workload_identity_pool_id          = google_iam_workload_identity_pool.airflow.workload_identity_pool_id
  workload_identity_pool_provider_id = {_hcl(p.provider_id)}
  attribute_mapping = {{
{mapping}
  }}
  attribute_condition = {_hcl(p.condition)}
{_terraform_trust(p)}{depends}
}}
''',
    ]
    if p.service_account:
        sa_name = p.service_account.split("@", 1)[0]
        sa_project = p.service_account.split("@", 1)[1].split(".", 1)[0]
        blocks += [
            f'''resource "google_service_account" "airflow" {{
  project      = {_hcl(sa_project)}
  account_id   = {_hcl(sa_name)}
  display_name = "Airflow (keyless, from AWS)"
}}
''',
            f'''resource "google_service_account_iam_member" "airflow_workload_identity_user" {{
  service_account_id = google_service_account.airflow.name
  role               = "roles/iam.workloadIdentityUser"
  member             = {_hcl(p.member)}
}}
''',
        ]
    for bucket in p.buckets:
        blocks.append(f'''resource "google_storage_bucket_iam_member" "{_tf_name(bucket)}" {{
  bucket = {_hcl(bucket)}
  role   = {_hcl(p.bucket_role)}
  member = {_hcl(p.grantee)}
}}
''')
    blocks.append(f'''output "gcp_wif_connection" {{
  description = "AIRFLOW_CONN_GCP_WIF_DEFAULT (or the secret's value in a secrets backend)"
  value       = {_hcl(_connection_json(p))}
}}
''')
    blocks += [f"# Note: {note}\n" for note in p.notes]
    return "\n".join(blocks)


AWS_FEDERATION_RESOURCE = "aws_iam_outbound_web_identity_federation.gcp_wif"


def _terraform_trust(p: SetupPlan) -> str:
    """The provider's ``aws {}`` block, or (``jwt``) its ``oidc {}`` block."""
    if not p.jwt:
        return f"  aws {{\n    account_id = {_hcl(p.aws_account_id)}\n  }}"
    issuer = _hcl(p.issuer_uri) if p.issuer_uri else f"{AWS_FEDERATION_RESOURCE}.issuer_identifier"
    return (f"  oidc {{\n    issuer_uri        = {issuer}\n    allowed_audiences = [{_hcl(p.jwt_audience)}]\n  }}")


def _terraform_aws_jwt_side(p: SetupPlan) -> list[str]:
    """``jwt``: the AWS side (hashicorp/aws provider, configured for account ``p.aws_account_id``)."""
    if not p.jwt:
        return []
    blocks = []
    if not p.issuer_uri:
        blocks.append(f"# AWS account {p.aws_account_id}: outbound identity federation on (creating this resource "
                      "enables it,\n# destroying it disables it; if the account has it on already, `terraform "
                      "import` it or pass --issuer-uri).\n"
                      'resource "aws_iam_outbound_web_identity_federation" "gcp_wif" {}\n')
    statement = p.web_identity_token_policy()["Statement"][0]
    duration = statement["Condition"]["NumericLessThanEquals"]["sts:DurationSeconds"]
    blocks.append(f'''# Role {p.aws_role_name} may ask STS GetWebIdentityToken for JWTs for this provider's audience \
only,
# signed {JWT_SIGNING_ALGORITHM}, valid at most {JWT_MAX_DURATION_SECONDS} s.
resource "aws_iam_role_policy" "gcp_wif_web_identity_token" {{
  name = {_hcl(JWT_POLICY_NAME)}
  role = {_hcl(p.aws_role_name)}
  policy = jsonencode({{
    Version = "2012-10-17"
    Statement = [{{
      Sid      = {_hcl(statement["Sid"])}
      Effect   = "Allow"
      Action   = "sts:GetWebIdentityToken"
      Resource = "*"
      Condition = {{
        "ForAllValues:StringEquals" = {{ "sts:IdentityTokenAudience" = {_hcl(p.jwt_audience)} }}
        StringEquals                = {{ "sts:SigningAlgorithm" = {_hcl(JWT_SIGNING_ALGORITHM)} }}
        NumericLessThanEquals       = {{ "sts:DurationSeconds" = {_hcl(duration)} }}
      }}
    }}]
  }})
}}
''')
    return blocks


def _terraform_policies(p: SetupPlan) -> list[tuple[str, str]]:
    """(resource name, block) per org policy. Terraform owns a policy resource whole, so the policies are set on
    the project and merge with the organization's (``inherit_from_parent``); for the organization itself the
    `allow` commands (which extend the organization's values) are given as comments."""
    result = []
    for _file_name, constraint, values in p.org_policies():
        name = constraint.split(".", 1)[1].replace("allowServiceAccountCredentialLifetimeExtension",
                                                   "lifetime_extension")
        resource = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        allowed = ", ".join(_hcl(v) for v in values)
        parent = f"projects/{p.project_id}"
        org_note = ""
        if p.organization_id:
            org_note = (f"# Organization-wide instead (extends the organization's values, replaces nothing):\n"
                        f"#   gcloud resource-manager org-policies allow {constraint} {' '.join(values)} "
                        f"--organization={p.organization_id}\n")
        why = f"# {_POLICY_WHY[constraint]}; merges with the organization's policy (inherit_from_parent)."
        result.append((resource, f'''{why}
{org_note}resource "google_org_policy_policy" "{resource}" {{
  name   = {_hcl(f"{parent}/policies/{constraint}")}
  parent = {_hcl(parent)}
  spec {{
    inherit_from_parent = true
    rules {{
      values {{
        allowed_values = [{allowed}]
      }}
    }}
  }}
}}
'''))
    return result


def cmd_setup(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from airflow_provider_gcp_wif.errors import WifConfigError

    try:
        plan = build_setup_plan(args)
    except WifConfigError as error:
        print(f"gcp-wif setup: {one_line(error)}", file=err)
        return EXIT_USAGE
    out.write(render_terraform(plan) if args.format == "terraform" else render_gcloud(plan))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------
# mwaa-bundle
# ---------------------------------------------------------------------------------------------------------------

MWAA_BUNDLE_HELP = f"""\
Write plugins.zip and requirements.txt for Amazon MWAA (its documented route for a package that is not on PyPI:
wheels in plugins.zip, which MWAA unpacks to {MWAA_PLUGINS_DIR}, and requirements.txt pointing pip there).

plugins.zip holds the provider's wheel and {PLUGIN_MODULE_NAME} (the plugins-folder route to the plugin; the
wheel's own airflow.plugins entry point does the same, Airflow registers it once). requirements.txt says
`--find-links {MWAA_PLUGINS_DIR}` and pins `{DISTRIBUTION}==<version>`.

Dependencies: by default pip fetches the provider's dependencies (apache-airflow-providers-google/-amazon,
google-auth) from PyPI under MWAA's constraints, which needs an environment with PyPI access. For a private
network without PyPI (private web server mode), MWAA documents `--no-index`: pip then resolves EVERY requirement
from plugins.zip alone. `--no-index --airflow-version X.Y.Z` does that for the named MWAA image: it resolves this
provider against the image (apache-airflow X.Y.Z + the Amazon provider, which every MWAA image has) under the
image's constraints for the image's Python ({', '.join(f'{v}: {p}' for v, p in MWAA_IMAGE_PYTHON.items())}),
manylinux2014_x86_64, binary wheels only, and downloads the wheels of what the image lacks (the Google provider
and its client libraries; typically 100+ wheels) with this Python's pip. The constraints file is
--constraints FILE, else constraints/mwaa/airflow-X.Y.Z.txt of this source tree (copies of the images'
etc/airflow_constraints.txt from aws/amazon-mwaa-docker-images); it is shipped in plugins.zip and referenced from
there, since an offline environment cannot reach a constraints URL (refused with --no-index). Or pass
--dependency-wheels DIR with wheels you built yourself.
"""


def _project_root() -> Path | None:
    """The source tree this package runs from (editable installs and checkouts), or ``None``."""
    import airflow_provider_gcp_wif

    root = Path(airflow_provider_gcp_wif.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and re.search(rf'^name\s*=\s*"{DISTRIBUTION}"', pyproject.read_text(), re.MULTILINE):
        return root
    return None


def build_wheel(out_dir: Path) -> Path:
    """Build the provider's wheel from its source tree with ``uv build`` (or ``pip wheel --no-deps``)."""
    root = _project_root()
    if root is None:
        raise UsageError(f"{DISTRIBUTION} is not installed from a source tree here; pass --wheel PATH (e.g. the "
                         f"wheel downloaded with `pip download {DISTRIBUTION} --no-deps`).")
    uv = shutil.which("uv") or (str(Path(sys.executable).with_name("uv"))
                                if Path(sys.executable).with_name("uv").exists() else None)
    if uv:
        command = [uv, "build", "--wheel", "--out-dir", str(out_dir), str(root)]
    else:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out_dir), str(root)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    wheels = sorted(out_dir.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise UsageError(f"building the wheel failed ({' '.join(command[:3])} ...): "
                         f"{(result.stderr or result.stdout).strip()[-2000:]}; or pass --wheel PATH.")
    return wheels[-1]


def wheel_metadata(path: Path) -> tuple[str, str]:
    """(Name, Version) from a wheel's ``METADATA``."""
    try:
        with zipfile.ZipFile(path) as wheel:
            names = [n for n in wheel.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            if not names:
                raise UsageError(f"{path} has no .dist-info/METADATA: not a wheel.")
            metadata = email.parser.Parser().parsestr(wheel.read(names[0]).decode("utf-8"))
    except zipfile.BadZipFile as err:
        raise UsageError(f"{path} is not a wheel (zip): {err}") from err
    return str(metadata["Name"]), str(metadata["Version"])


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class MwaaImage:
    """The MWAA image a --no-index bundle is built for."""

    airflow_version: str
    python_version: str
    constraints: Path


def mwaa_image(args: argparse.Namespace) -> MwaaImage:
    """The image named by --airflow-version: its Python (--python-version overrides) and its constraints file."""
    from packaging.version import InvalidVersion, Version

    try:
        airflow_version = str(Version(args.airflow_version))
    except InvalidVersion as err:
        raise UsageError(f"--airflow-version {args.airflow_version}: not a version (e.g. 3.0.6).") from err
    python_version = args.python_version or MWAA_IMAGE_PYTHON.get(airflow_version)
    if python_version is None:
        raise UsageError(f"--airflow-version {airflow_version}: not an MWAA image this tool knows "
                         f"({', '.join(MWAA_IMAGE_PYTHON)}); pass --python-version 3.X too.")
    if args.constraints:
        constraints = Path(args.constraints)
    else:
        root = _project_root()
        constraints = (root / "constraints" / "mwaa" / f"airflow-{airflow_version}.txt") if root else Path("-")
    if not constraints.is_file():
        raise UsageError(f"no constraints file for MWAA {airflow_version}: pass --constraints FILE (the image's "
                         f"etc/airflow_constraints.txt in aws/amazon-mwaa-docker-images, or Airflow's "
                         f"constraints-{airflow_version}/constraints-{python_version}.txt).")
    return MwaaImage(airflow_version, python_version, constraints)


def _uv() -> str:
    uv = shutil.which("uv") or (str(Path(sys.executable).with_name("uv"))
                                if Path(sys.executable).with_name("uv").exists() else None)
    if not uv:
        raise UsageError("--airflow-version resolves the image's dependency set with uv (`pip install uv`; pip "
                         "cannot resolve for another platform when a pin has no wheel, e.g. dill 0.3.1.1); or "
                         "pass --dependency-wheels DIR.")
    return uv


def _resolve(image: MwaaImage, requirements: list[str], work: Path, label: str) -> dict[str, str]:
    """{normalised name: version} that ``requirements`` resolve to on the image (its Python, manylinux x86_64,
    its constraints). Only metadata is read; sdist-only pins of the image (installed there already) are fine."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    source = work / f"{label}.in"
    source.write_text("\n".join(requirements) + "\n")
    command = [_uv(), "pip", "compile", "--quiet", "--no-config", "--no-header", "--no-annotate",
               "--python-platform", "x86_64-manylinux_2_17", "--python-version", image.python_version,
               "-c", str(image.constraints), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        raise UsageError(f"could not resolve {label} for MWAA {image.airflow_version} (Python "
                         f"{image.python_version}): {one_line(result.stderr or result.stdout, 1500)}")
    pins: dict[str, str] = {}
    for line in result.stdout.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        pins[canonicalize_name(requirement.name)] = (specifiers[0].version if specifiers else
                                                     str(requirement.url or ""))
    return pins


def download_dependency_wheels(image: MwaaImage, wheel: Path, into: Path) -> list[str]:
    """Download the wheels our wheel needs beyond what the image already has: resolve the image (apache-airflow
    at its version + MWAA_IMAGE_PACKAGES) and the image plus our wheel under the image's constraints; the
    difference is what pip on an offline MWAA would otherwise look for on an index."""
    into.mkdir(parents=True, exist_ok=True)
    base = [f"apache-airflow=={image.airflow_version}", *MWAA_IMAGE_PACKAGES]
    with tempfile.TemporaryDirectory(prefix="gcp-wif-resolve-") as work:
        in_image = _resolve(image, base, Path(work), "image")
        with_us = _resolve(image, [*base, f"{DISTRIBUTION} @ {wheel.resolve().as_uri()}"], Path(work),
                           "bundle")
    missing = sorted(f"{name}=={version}" for name, version in with_us.items()
                     if name != DISTRIBUTION and in_image.get(name) != version)
    if missing:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                   "-d", str(into), "--platform", MWAA_PLATFORM, "--python-version", image.python_version,
                   "--implementation", "cp", "--only-binary=:all:", *missing]
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        if result.returncode != 0:
            raise UsageError(f"pip download failed: {one_line(result.stderr or result.stdout, 1500)}")
    return missing


def cmd_mwaa_bundle(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        written = write_mwaa_bundle(args)
    except UsageError as error:
        print(f"gcp-wif mwaa-bundle: {error}", file=err)
        return EXIT_USAGE
    plugins, requirements, contents = written
    print(f"wrote {plugins} ({', '.join(contents)})", file=out)
    print(f"wrote {requirements}:", file=out)
    for line in requirements.read_text().splitlines():
        if line and not line.startswith("#"):
            print(f"    {line}", file=out)
    print("next: upload both to the environment's S3 bucket and point the environment at their versions, e.g.\n"
          "    aws s3 cp plugins.zip s3://BUCKET/plugins.zip && aws s3 cp requirements.txt "
          "s3://BUCKET/requirements.txt\n"
          "    aws mwaa update-environment --name ENV --plugins-s3-path plugins.zip --plugins-s3-object-version V1 "
          "--requirements-s3-path requirements.txt --requirements-s3-object-version V2", file=out)
    return EXIT_OK


def write_mwaa_bundle(args: argparse.Namespace) -> tuple[Path, Path, list[str]]:
    output = Path(args.output)
    if args.no_index and not (args.dependency_wheels or args.airflow_version):
        raise UsageError("--no-index makes pip on MWAA resolve every requirement from plugins.zip alone: pass "
                         "--airflow-version X.Y.Z (the image's version: its dependency wheels are downloaded) or "
                         "--dependency-wheels DIR with wheels of all dependencies (see --help).")
    if args.no_index and args.constraints and urlsplit(args.constraints).scheme in ("http", "https"):
        raise UsageError(f"--constraints {args.constraints}: with --no-index the environment has no network to "
                         "fetch a constraints URL (pip would fail on every container start); pass the "
                         "constraints FILE instead, it is shipped in plugins.zip.")
    image = mwaa_image(args) if args.airflow_version else None
    if image and not args.constraints:
        args.constraints = str(image.constraints)
    with tempfile.TemporaryDirectory(prefix="gcp-wif-wheel-") as build_dir:
        wheel = Path(args.wheel) if args.wheel else build_wheel(Path(build_dir))
        if not wheel.is_file():
            raise UsageError(f"--wheel {wheel}: no such file.")
        name, version = wheel_metadata(wheel)
        if _normalise(name) != DISTRIBUTION:
            raise UsageError(f"{wheel} is {name} {version}, not {DISTRIBUTION}.")
        downloaded = Path(build_dir) / "dependencies"
        if image and args.no_index:
            download_dependency_wheels(image, wheel, downloaded)
        entries: dict[str, bytes] = {}
        if args.merge:
            with zipfile.ZipFile(args.merge) as existing:
                entries.update({n: existing.read(n) for n in existing.namelist() if not n.endswith("/")})
        entries[wheel.name] = wheel.read_bytes()
        entries[PLUGIN_MODULE_NAME] = PLUGIN_MODULE_SOURCE.encode()
        folders = [Path(f) for f in (args.dependency_wheels, downloaded) if f and Path(f).is_dir()]
        for dependency in sorted(w for folder in folders for w in folder.glob("*.whl")):
            if _normalise(wheel_metadata(dependency)[0]) != DISTRIBUTION:
                entries[dependency.name] = dependency.read_bytes()
        constraint_line = None
        if args.constraints:
            if urlsplit(args.constraints).scheme in ("http", "https"):
                constraint_line = f'--constraint "{args.constraints}"'
            elif Path(args.constraints).is_file():
                entries["constraints.txt"] = Path(args.constraints).read_bytes()
                constraint_line = f'--constraint "{MWAA_PLUGINS_DIR}/constraints.txt"'
            else:
                raise UsageError(f"--constraints {args.constraints}: neither an http(s) URL nor a file.")
    output.mkdir(parents=True, exist_ok=True)
    plugins = output / "plugins.zip"
    with zipfile.ZipFile(plugins, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for entry, data in entries.items():
            bundle.writestr(entry, data)
    mode = ("--no-index: every requirement comes from plugins.zip" if args.no_index
            else "dependencies come from PyPI (under MWAA's constraints)")
    lines = [
        f"# Written by `gcp-wif mwaa-bundle` for {DISTRIBUTION} {version}; {mode}.",
        f"# The wheel is in plugins.zip, which MWAA unpacks to {MWAA_PLUGINS_DIR}.",
    ]
    if constraint_line:
        lines.append(constraint_line)
    lines.append(f"--find-links {MWAA_PLUGINS_DIR}")
    if args.no_index:
        lines.append("--no-index")
    lines.append(f"{DISTRIBUTION}=={version}")
    requirements = output / "requirements.txt"
    requirements.write_text("\n".join(lines) + "\n")
    return plugins, requirements, sorted(entries)


# ---------------------------------------------------------------------------------------------------------------
# the parser
# ---------------------------------------------------------------------------------------------------------------

_SOURCE_HELP = ("read the settings from this Airflow connection (type gcp_wif; environment variables, secrets "
                "backend or metadata database); without it, the seed's environment variables GCP_PROJECT_NUMBER, "
                "GCP_WORKLOAD_ID, GCP_WORKLOAD_PROVIDER, GCP_SERVICE_ACCOUNT_EMAIL, AWS_ACCOUNT_ID, AWS_ROLE_NAME, "
                "AWS_REGION, TOKEN_LIFETIME, TOKEN_SCOPES, GCP_WIF_STS_ENDPOINT, GCP_WIF_IAM_ENDPOINT")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gcp-wif", description="Keyless Google Cloud access from an AWS identity.")
    commands = parser.add_subparsers(dest="command", required=True)

    token = commands.add_parser("token", help="print a Google access token and its expiry (seed parity)",
                                description="Print a Google access token and its RFC 3339 expiry.")
    token.add_argument("--conn-id", help=_SOURCE_HELP)
    token.add_argument("--json", action="store_true", help='print {"access_token": ..., "expire_time": ...}')
    token.set_defaults(handler=cmd_token)

    doctor = commands.add_parser(
        "doctor", help="check each step of the exchange and print the fix for what fails",
        description="Check the settings, the AWS identity, the subject length, the STS exchange, the "
        "impersonation and one Google API call (Cloud Resource Manager projects.get), one visible step at a time. "
        "Exit status 0 only when no check failed (warnings do not fail). Prints no token or secret.",
    )
    doctor.add_argument("--conn-id", help=_SOURCE_HELP)
    doctor.add_argument("--json", action="store_true", help="print the checklist as JSON")
    doctor.add_argument("--no-api-call", action="store_true", help="skip the sample Google API call")
    doctor.add_argument("--api-url", help="base URL of Cloud Resource Manager for the sample call (default: "
                        "derived from the STS endpoint: Google's, its Private Service Connect name, or the emulator)")
    doctor.set_defaults(handler=cmd_doctor)

    setup = commands.add_parser(
        "setup", help="print the gcloud commands (or Terraform) that create the pool, provider and bindings",
        description="Print what creates the Google side: the APIs, a workload identity pool, an AWS provider "
        "that trusts one AWS account and (attribute condition) one role, and either a service account with the "
        "roles/iam.workloadIdentityUser binding for exactly that role's principalSet, or (--direct-access) roles "
        "granted to the role's principalSet on the resources themselves; optionally org policies, which are "
        "merged with the organization's, never replaced. Flags left out fall back to the seed's environment "
        "variables GCP_PROJECT_NUMBER, GCP_WORKLOAD_ID, GCP_WORKLOAD_PROVIDER, GCP_SERVICE_ACCOUNT_EMAIL, "
        "AWS_ACCOUNT_ID, AWS_ROLE_NAME. With --federation jwt: the AWS side too (outbound identity federation, "
        "the role's sts:GetWebIdentityToken policy) and an OIDC provider trusting the account's issuer.",
    )
    setup.add_argument("--project-id", required=True, help="project that owns the pool and the service account")
    setup.add_argument("--project-number", help="its number (digits; default $GCP_PROJECT_NUMBER)")
    setup.add_argument("--pool-id", help="workload identity pool id (default $GCP_WORKLOAD_ID, else airflow-aws)")
    setup.add_argument("--provider-id",
                       help="AWS provider id (default $GCP_WORKLOAD_PROVIDER, else aws-provider)")
    setup.add_argument("--aws-account-id", help="the AWS account of the role (not needed with a role ARN; default "
                       "$AWS_ACCOUNT_ID)")
    setup.add_argument("--aws-role-name",
                       help="the AWS role Airflow runs as (on MWAA: the execution role); a name or an IAM role ARN "
                       "(default $AWS_ROLE_NAME)")
    setup.add_argument("--aws-partition", choices=AWS_PARTITIONS,
                       help="AWS partition of the role (default: the role ARN's, else aws)")
    setup.add_argument("--service-account",
                       help="service account email or name (default $GCP_SERVICE_ACCOUNT_EMAIL, else "
                       "airflow-wif@PROJECT_ID.iam.gserviceaccount.com)")
    setup.add_argument("--direct-access", action="store_true",
                       help="no service account: grant roles to the AWS role's principalSet on the resources "
                       "(--bucket) and use the federated token directly")
    setup.add_argument("--bucket", action="append", metavar="BUCKET",
                       help="grant --bucket-role on this Cloud Storage bucket (repeatable)")
    setup.add_argument("--bucket-role", default="roles/storage.objectAdmin",
                       help="role granted on each --bucket (default roles/storage.objectAdmin)")
    setup.add_argument("--universe-domain", default="googleapis.com",
                       help="Google universe of the project (default googleapis.com)")
    setup.add_argument("--organization-id", help="organization whose org policies to extend (default: set "
                       "project policies that merge with the organization's)")
    setup.add_argument("--lifetime-over-hour", action="store_true",
                       help="allow the account in the org policy iam.allowServiceAccountCredentialLifetimeExtension "
                       "(lifetime_seconds up to 43200)")
    setup.add_argument("--org-restrictions", action="store_true",
                       help="allow AWS providers (iam.workloadIdentityPoolProviders) and this AWS account "
                       "(iam.workloadIdentityPoolAwsAccounts) in org policies, added to what is allowed already")
    setup.add_argument("--federation", choices=FEDERATIONS, default="sigv4",
                       help="sigv4 (default): an AWS provider verifies a signed GetCallerIdentity request; jwt: AWS "
                       "outbound identity federation, an OIDC provider verifies the JWT GetWebIdentityToken gives "
                       "the role (also prints the AWS side: the feature, the issuer URL, the role's IAM policy)")
    setup.add_argument("--issuer-uri", help="with --federation jwt: the AWS account's outbound-federation issuer URL "
                       "(default: the gcloud script reads it with the AWS CLI; Terraform enables the feature)")
    setup.add_argument("--format", choices=("gcloud", "terraform"), default="gcloud")
    setup.set_defaults(handler=cmd_setup)

    bundle = commands.add_parser("mwaa-bundle", help="write plugins.zip and requirements.txt for Amazon MWAA",
                                 description=MWAA_BUNDLE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    bundle.add_argument("--output", required=True, help="folder to write plugins.zip and requirements.txt to")
    bundle.add_argument("--wheel", help=f"the {DISTRIBUTION} wheel to ship (default: build it from the source tree)")
    bundle.add_argument("--merge", metavar="PLUGINS_ZIP", help="an existing plugins.zip whose files are kept")
    bundle.add_argument("--constraints", help="a constraints URL, or a file shipped in plugins.zip (default: MWAA "
                        "applies its own constraints for its Airflow version)")
    bundle.add_argument("--no-index", action="store_true",
                        help="private network without PyPI: pip installs only from plugins.zip (needs "
                        "--airflow-version or --dependency-wheels)")
    bundle.add_argument("--dependency-wheels", metavar="DIR", help="folder of dependency wheels to add to plugins.zip")
    bundle.add_argument("--airflow-version", metavar="X.Y.Z",
                        help="the MWAA image's Airflow version: with --no-index, download the wheels this provider "
                        "needs beyond the image (its Python, manylinux x86_64, its constraints)")
    bundle.add_argument("--python-version", metavar="3.X",
                        help="the image's Python (default: the known MWAA image's, see above)")
    bundle.set_defaults(handler=cmd_mwaa_bundle)
    return parser


def one_line(message: object, limit: int = 2000) -> str:
    """``message`` as one bounded line: whitespace and control characters collapse to single spaces."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(message)[: 2 * limit]).split())
    return text if len(text) <= limit else text[:limit] + "..."


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one subcommand. Whatever goes wrong ends as one line on stderr and a non-zero status, no traceback:
    2 for bad settings or usage, 1 for anything else."""
    from airflow_provider_gcp_wif.errors import WifConfigError

    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace, TextIO, TextIO], int] = args.handler
    error_stream = err or sys.stderr
    try:
        return handler(args, out or sys.stdout, error_stream)
    except (WifConfigError, UsageError) as error:
        print(f"gcp-wif {args.command}: {one_line(error)}", file=error_stream)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - a command line prints one line, not a traceback
        print(f"gcp-wif {args.command}: {type(error).__name__}: {one_line(error, 500)}", file=error_stream)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
