"""``gcp-wif doctor``: run the exchange step by step (settings, AWS identity, subject length, web identity token
(federation jwt), STS exchange, impersonation, one Google API call) and print a checklist with Google's reason and
the fix for each failure. :func:`doctor` runs it inside an Airflow task."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from airflow_provider_gcp_wif.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    SUBJECT_LIMIT_BYTES,
    Source,
    UsageError,
    _request,
    load_source,
    one_line,
)

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.config import WifSettings

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
    from airflow_provider_gcp_wif.endpoints import EndpointRefused, checked_endpoint, parse_allowed_hosts
    from airflow_provider_gcp_wif.options import allowed_endpoint_hosts  # the environment without Airflow

    try:
        checked_endpoint(raw, allowed=parse_allowed_hosts(allowed_endpoint_hosts()), universe=settings.universe_domain)
    except EndpointRefused as refused:
        return refused.reason
    return None


class Doctor:
    """Runs the exchange one visible step at a time. Steps after a failed one are skipped (they could only fail
    for the same reason); a warning does not stop the run and does not fail it."""

    def __init__(self, conn_id: str | None, *, api_call: bool = True, api_url: str | None = None,
                 steps: Sequence[Step] | None = None) -> None:
        self.conn_id = conn_id
        self.api_call = api_call
        self.api_url = api_url
        self.steps: Sequence[Step] = STEPS if steps is None else steps
        self.checks: list[Check] = []
        self.source: Source | None = None
        self.caller_arn: str | None = None
        self.credentials: Any = None

    @property
    def failed(self) -> bool:
        return any(check.status == FAIL for check in self.checks)

    def run(self) -> list[Check]:
        for step in self.steps:
            if not step.applies(self):
                continue
            if self.failed:
                self.checks.append(Check(step.name, SKIP, "not run: an earlier step failed."))
                continue
            started = time.monotonic()
            check = step.check(self)
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
        from airflow_provider_gcp_wif.errors import WifExchangeError
        from airflow_provider_gcp_wif.resource_names import account_of

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
        from airflow_provider_gcp_wif.chain import caller_of
        from airflow_provider_gcp_wif.diagnosis import GoogleAnswer, translate

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
        settings = self.source.settings
        error = translate("sts_exchange", answer, settings, caller_of(settings, self.source.supplier))
        return Check(
            "subject length", WARN,
            f"the caller ARN is {size} bytes: over Google's {SUBJECT_LIMIT_BYTES}-byte google.subject limit if the "
            "provider maps google.subject=assertion.arn (the default); the STS step shows whether it does.",
            error.fix,
        )

    def check_web_identity_token(self) -> Check:
        """``federation: jwt``: one GetWebIdentityToken (the JWT the STS step then exchanges, cached), and what
        Google's OIDC provider will check in it: audience, issuer, subject size, this host's clock."""
        from airflow_provider_gcp_wif.chain import jwt_audience, web_identity_token_supplier
        from airflow_provider_gcp_wif.diagnosis import jwt_claims
        from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError

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
        from airflow_provider_gcp_wif.chain import build_chain

        assert self.source is not None
        settings = self.source.settings
        chain = build_chain(settings, self.source.supplier)
        self.credentials, federated = chain.final, chain.federated
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



def _always(doctor: Doctor) -> bool:
    return True


def _jwt_only(doctor: Doctor) -> bool:
    return doctor.source is not None and doctor.source.settings.federation == "jwt"


@dataclass(frozen=True)
class Step:
    """One step of the checklist: its name, the check that runs it (returning one :class:`Check`), and whether it
    applies to this run (a step that does not apply is left out of the checklist, not skipped)."""

    name: str
    check: Callable[[Doctor], Check]
    applies: Callable[[Doctor], bool] = _always


#: The doctor's checklist, in order; a step after a failed one is reported as skipped.
STEPS: tuple[Step, ...] = (
    Step("settings", Doctor.check_settings),
    Step("AWS identity", Doctor.check_aws_identity),
    Step("subject length", Doctor.check_subject_length),
    Step("web identity token", Doctor.check_web_identity_token, applies=_jwt_only),
    Step("STS exchange", Doctor.check_sts_exchange),
    Step("impersonation", Doctor.check_impersonation),
    Step("API call", Doctor.check_api_call),
)

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
            from airflow_provider_gcp_wif.cli.doctor_command import doctor
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

