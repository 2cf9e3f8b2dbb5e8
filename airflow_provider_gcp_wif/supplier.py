"""The AWS side of the exchange: credentials and region from a boto3 session.

google-auth's own AWS credential sources read only environment variables and EC2 instance metadata, which is why
keyless access fails on MWAA (ECS container credentials) and under EKS Pod Identity. Here the boto3 session is the
single source: whatever it can authenticate with (static keys, profiles, ``role_arn`` chains through the Amazon
provider's ``AwsBaseHook``, container credentials, instance profiles, IRSA) this supplier can sign with. It adds
nothing of its own: every call asks the session for its current frozen credentials, so the session's own refresh of
assumed roles is what keeps them valid.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
import threading
import urllib.parse
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from google.auth import aws, identity_pool

from airflow_provider_gcp_wif import forks, masking
from airflow_provider_gcp_wif.botocore_sharing import shared_botocore_data
from airflow_provider_gcp_wif.constants import JWT_DURATION_SECONDS, JWT_SIGNING_ALGORITHM
from airflow_provider_gcp_wif.diagnosis import aws_error_code, translate_aws_error
from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError
from airflow_provider_gcp_wif.refresh import Clock, RefreshWindows, utcnow
from airflow_provider_gcp_wif.resource_names import sts_host

if TYPE_CHECKING:
    import boto3

log = logging.getLogger(__name__)

SessionFactory = Callable[[], "boto3.session.Session"]

#: The first botocore (and boto3) release whose STS model has GetWebIdentityToken (IAM outbound identity federation).
GET_WEB_IDENTITY_TOKEN_BOTOCORE = "1.41.0"
#: GetWebIdentityToken's own default (``JWT_DURATION_SECONDS``) and bounds for DurationSeconds.
MIN_JWT_DURATION_SECONDS = 60
#: How long before the AWS credentials' expiry a JWT must end (clock skew between this host and AWS).
SESSION_EXPIRY_MARGIN_SECONDS = 30
#: The global STS hosts, which do not serve GetWebIdentityToken (regional endpoints only).
GLOBAL_STS_HOSTS = frozenset({"sts.amazonaws.com"})


def web_identity_token_duration(
    wanted: int, credentials_expiry: datetime.datetime | None, now: datetime.datetime
) -> int | None:
    """The ``DurationSeconds`` to ask GetWebIdentityToken for: ``wanted``, shortened so that the JWT never outlives
    the AWS credentials that ask for it (AWS answers ``SessionDurationEscalationException`` otherwise; MWAA's
    container credentials can have minutes left), with :data:`SESSION_EXPIRY_MARGIN_SECONDS` to spare. ``None``
    when not even the minimum (60 s) fits: the credentials must be renewed first."""
    wanted = max(MIN_JWT_DURATION_SECONDS, min(3600, wanted))
    if credentials_expiry is None:
        return wanted
    remaining = math.floor((credentials_expiry - now).total_seconds()) - SESSION_EXPIRY_MARGIN_SECONDS
    duration = min(wanted, remaining)
    return duration if duration >= MIN_JWT_DURATION_SECONDS else None


# Every live AWS and JWT supplier, so that a forked child can give each one fresh locks (and the AWS ones no boto3
# session): what this module's fork handler walks, see _after_fork_in_child.
_live_suppliers: weakref.WeakSet[Boto3Supplier | WebIdentityTokenSupplier] = weakref.WeakSet()


class Boto3Supplier(aws.AwsSecurityCredentialsSupplier):
    """An ``AwsSecurityCredentialsSupplier`` over a (lazily created) boto3 session.

    Args:
        session_factory: returns the boto3 session to use; called once, on first use (so building credentials
            does no I/O and no connection lookup: the triggerer's event loop stays free).
        region: the region for the signed ``GetCallerIdentity``; ``None`` uses the session's region, then
            ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
        identity_key: a stable, non-secret name of the identity source (e.g. the AWS connection id and a digest
            of its settings), used to share one Google credential between callers with the same identity.
        description: how to name the source in error messages, e.g. ``"AWS connection 'aws_default'"``.
        sts_client_factory: returns an AWS STS client for the caller-identity lookup that error messages use; by
            default ``session.client("sts")`` (which honours ``AWS_ENDPOINT_URL_STS``).
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        region: str | None = None,
        identity_key: str = "default",
        description: str = "the default AWS credential chain",
        sts_client_factory: Callable[[Any, str], Any] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._session: boto3.session.Session | None = None
        self._lock = threading.Lock()
        self._region = region
        self.identity_key = identity_key
        self.description = description
        self._sts_client_factory = sts_client_factory
        self._caller_arn: str | None = None
        self._jwt_suppliers: dict[str, WebIdentityTokenSupplier] = {}
        self._jwt_lock = threading.Lock()
        _live_suppliers.add(self)
        masking.redact_botocore_signatures()  # botocore.auth logs each signature (DEBUG) while computing it
        masking.redact_botocore_wire_secrets()  # botocore.parsers logs a role_arn's AssumeRole answer (DEBUG)

    def __repr__(self) -> str:
        return f"Boto3Supplier({self.description}, region={self._region!r})"

    @classmethod
    def default_chain(cls, *, region: str | None = None, profile: str | None = None) -> Boto3Supplier:
        """boto3's default credential chain (environment, ``AWS_PROFILE``, container, instance metadata)."""
        profile = profile or os.environ.get("AWS_PROFILE") or None

        def make() -> boto3.session.Session:
            import boto3

            return boto3.session.Session(profile_name=profile)

        key_id = os.environ.get("AWS_ACCESS_KEY_ID", "")
        digest = hashlib.sha256(f"{profile}|{key_id}".encode()).hexdigest()[:16]
        where = f"AWS profile {profile!r}" if profile else "the default AWS credential chain"
        return cls(make, region=region, identity_key=f"default-chain:{digest}", description=where)

    # -- the session -----------------------------------------------------------------------------------------

    def session(self) -> boto3.session.Session:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    try:
                        with shared_botocore_data():
                            self._session = self._session_factory()
                    except WifExchangeError:
                        raise
                    except Exception as err:
                        raise self._error(f"could not create an AWS session from {self.description}: {err}") from err
        return self._session

    def _error(self, reason: str) -> WifExchangeError:
        return WifExchangeError(
            "aws_credentials",
            reason.rstrip(".") + ".",
            f"check {self.description}: `aws sts get-caller-identity` must work with the same credentials "
            "(on MWAA: the environment's execution role; elsewhere the AWS connection's keys, role_arn or profile).",
        )

    # -- AwsSecurityCredentialsSupplier ----------------------------------------------------------------------

    def get_aws_security_credentials(self, context: Any, request: Any) -> aws.AwsSecurityCredentials:
        session = self.session()
        try:
            credentials = session.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials is not None else None
        except Exception as err:  # botocore: ClientError on AssumeRole, NoCredentialsError, endpoint errors...
            raise self._error(f"AWS refused or failed to provide credentials from {self.description}: {err}") from err
        if frozen is None or not frozen.access_key or not frozen.secret_key:
            raise self._error(f"no AWS credentials were found in {self.description}")
        masking.announce(frozen.secret_key, frozen.token)
        return aws.AwsSecurityCredentials(frozen.access_key, frozen.secret_key, frozen.token or None)

    def get_aws_region(self, context: Any, request: Any) -> str:
        region = self._region
        if not region:
            region = self.session().region_name
        if not region:
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise WifExchangeError(
                "aws_credentials",
                f"no AWS region is known for {self.description}, and the signed GetCallerIdentity request needs "
                "a regional STS endpoint.",
                "set the gcp_wif connection's aws_region extra, or region_name on the AWS connection, or "
                "AWS_REGION.",
            )
        return region

    def identity_material(self) -> str:
        """Which AWS identity the session resolves to now, for the host token cache's key (which holds only a keyed
        digest of it: the text names an access key id and digests of secrets, so it is never logged or written as it
        is). No request to AWS for the usual sources: environment keys, profiles' static keys, container and instance
        credentials are what botocore already resolved; a role assumed by botocore (a ``role_arn`` profile, the roles of
        :func:`~airflow_provider_gcp_wif.token_service.assume_role_session`, ``AWS_ROLE_ARN`` with a web identity token
        file, the Amazon provider's ``role_arn`` connections) is named by the role, its parameters and the identity that
        assumes it (the source credentials, or the web identity token's digest), so every process assuming it the same
        way shares one key (each assumption has a new access key id; a session name botocore generated is left out, as
        it names the second the process made it). Anything else: the access key id botocore resolves, with a digest of
        its secret key and session token (an access key id alone is not secret).

        Raises:
            WifExchangeError: step ``aws_credentials``, when no AWS credentials can be resolved.
        """
        session = self.session()
        try:
            return _credentials_identity(session.get_credentials())
        except WifExchangeError:
            raise
        except Exception as err:  # botocore: NoCredentialsError, ClientError on AssumeRole, endpoint errors...
            raise self._error(f"AWS refused or failed to provide credentials from {self.description}: {err}") from err

    def credentials_expiry(self) -> datetime.datetime | None:
        """When the session's current AWS credentials expire (aware UTC), or ``None`` when botocore does not know
        (long-term keys, or a session token given without its expiry)."""
        credentials = self.session().get_credentials()
        expiry = getattr(credentials, "_expiry_time", None)
        if not isinstance(expiry, datetime.datetime):
            return None
        return expiry if expiry.tzinfo else expiry.replace(tzinfo=datetime.timezone.utc)

    def regional_sts_client(self, region: str) -> Any:
        """An AWS STS client for ``region``'s own endpoint: the AWS connection's ``endpoint_url`` (or
        ``AWS_ENDPOINT_URL_STS``) when one is set, else ``https://sts.<region>.amazonaws.com``, never the global
        ``sts.amazonaws.com`` (which ``sts_regional_endpoints = legacy`` would pick, and which does not serve
        GetWebIdentityToken)."""
        session = self.session()
        if self._sts_client_factory is not None:
            client = self._sts_client_factory(session, region)
        else:
            client = session.client("sts", region_name=region)
        host = urllib.parse.urlsplit(str(client.meta.endpoint_url)).hostname or ""
        if host in GLOBAL_STS_HOSTS:
            client = session.client("sts", region_name=region, endpoint_url=f"https://{sts_host(region)}")
        return _announcing_signatures(client)

    # -- who am I (error messages, connection tests) ---------------------------------------------------------

    def caller_arn(self) -> str | None:
        """The ARN AWS sees for these credentials (one ``GetCallerIdentity`` call to AWS, remembered)."""
        if self._caller_arn is None:
            session = self.session()
            region = self.get_aws_region(None, None)
            if self._sts_client_factory is not None:
                client = self._sts_client_factory(session, region)
            else:
                client = session.client("sts", region_name=region)
            self._caller_arn = str(_announcing_signatures(client).get_caller_identity()["Arn"])
        return self._caller_arn

    # -- federation jwt --------------------------------------------------------------------------------------

    def web_identity_token_supplier(self, audience: str) -> WebIdentityTokenSupplier:
        """The one JWT supplier of this AWS identity for ``audience`` (shared, so a JWT is reused across
        credentials and rebuilds after a fork until it nears its expiry)."""
        with self._jwt_lock:
            jwt = self._jwt_suppliers.get(audience)
            if jwt is None:
                jwt = self._jwt_suppliers[audience] = WebIdentityTokenSupplier(self, audience)
            return jwt

    # -- fork ------------------------------------------------------------------------------------------------

    def _after_fork(self) -> None:
        # Another thread of the parent may have held a lock, or been inside botocore's own credential refresh
        # (whose lock the session's credentials hold), at the moment of the fork: the child gets fresh locks and
        # builds its own session (and with it its own connection pools).
        self._lock = threading.Lock()
        self._jwt_lock = threading.Lock()
        self._session = None


def _announcing_signatures(client: Any) -> Any:
    """``client`` (an AWS STS client this module calls), its requests' signatures announced to the secrets masker
    once signed (a handler after the client's signer: see :func:`masking.announce_request_signature`)."""
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is not None:
        events.register_last("request-created.sts", masking.announce_request_signature,
                             unique_id="gcp-wif-announce-signature")
    return client


def _credentials_identity(credentials: Any, depth: int = 0) -> str:
    """See :meth:`Boto3Supplier.identity_material`."""
    from botocore.credentials import AssumeRoleCredentialFetcher, AssumeRoleWithWebIdentityCredentialFetcher

    if credentials is None:
        raise LookupError("no AWS credentials were found")
    fetcher = getattr(getattr(credentials, "_refresh_using", None), "__self__", None)
    if depth < 8:
        if isinstance(fetcher, AssumeRoleCredentialFetcher):
            parameters = _assume_role_parameters(fetcher)
            return f"assume-role {parameters} by ({_credentials_identity(fetcher._source_credentials, depth + 1)})"
        if isinstance(fetcher, AssumeRoleWithWebIdentityCredentialFetcher):
            parameters = _assume_role_parameters(fetcher)
            token = str(fetcher._web_identity_token_loader())
            return f"web-identity {parameters} token sha256:{hashlib.sha256(token.encode()).hexdigest()}"
        connection: Any = getattr(fetcher, "conn", None)
        role_arn = getattr(connection, "role_arn", None)
        basic_session: Any = getattr(fetcher, "basic_session", None)
        if role_arn and basic_session is not None:
            # The Amazon provider's session factory (an AWS connection with role_arn, assume_role or SAML): the
            # role and how it is assumed, by the connection's own base identity (found by shape: no Airflow import).
            parameters = json.dumps([role_arn, getattr(connection, "assume_role_method", None),
                                     getattr(connection, "assume_role_kwargs", None)], sort_keys=True, default=str)
            base = _credentials_identity(basic_session.get_credentials(), depth + 1)
            return f"airflow-assume-role {parameters} by ({base})"
    frozen = credentials.get_frozen_credentials()
    if not frozen.access_key:
        raise LookupError("no AWS credentials were found")
    # The access key id is not secret: whoever sets another's id with any secret key must not name its identity.
    keys = hashlib.sha256(json.dumps([frozen.secret_key, frozen.token]).encode()).hexdigest()
    return f"access-key {frozen.access_key} keys sha256:{keys}"


def _assume_role_parameters(fetcher: Any) -> str:
    """A botocore assume-role fetcher's AssumeRole parameters, without the ``RoleSessionName`` botocore generated
    (``botocore-session-<the second>``, as its own credential cache leaves it out) so that processes started in
    different seconds share one identity; kept when configured, or when the fetcher does not say (fail safe)."""
    parameters = dict(fetcher._assume_kwargs)
    if getattr(fetcher, "_using_default_session_name", False) is True:
        parameters.pop("RoleSessionName", None)
    return json.dumps(parameters, sort_keys=True, default=str)


def jwt_windows(expiration: datetime.datetime, now: datetime.datetime) -> RefreshWindows:
    """How long a JWT obtained ``now`` is reused: until a minute before its expiration, or half its lifetime when
    that is shorter (one window: a JWT is fetched under the supplier's lock, every caller waits for it)."""
    return RefreshWindows.from_expiry(expiration, now, advisory=60.0, mandatory=60.0, advisory_share=0.5,
                                      mandatory_share=0.5)


class WebIdentityTokenSupplier(identity_pool.SubjectTokenSupplier):
    """The ``federation: jwt`` route's subject tokens: JWTs from AWS STS ``GetWebIdentityToken`` (IAM outbound
    identity federation), asked for by the AWS identity of ``aws`` on its region's STS endpoint, for ``audience``
    (the Google provider's ``https://iam.googleapis.com/...`` name, which Google's OIDC providers allow by default),
    signed with RS256, for at most ``duration_seconds`` and never beyond the AWS credentials' own expiry.

    A JWT is reused until shortly before it expires (a minute, or half its lifetime when shorter), so retries,
    child processes and the ID-token path share one; each is announced to the secrets masker before anyone sees it.

    Raises (from :meth:`get_subject_token`):
        WifConfigError: the installed botocore predates GetWebIdentityToken (field ``federation``).
        WifExchangeError: step ``aws_credentials``, AWS's reason (the feature disabled in the account, the role
            lacking ``sts:GetWebIdentityToken``, ...) and the fix.
    """

    def __init__(
        self,
        aws: Boto3Supplier,
        audience: str,
        *,
        duration_seconds: int = JWT_DURATION_SECONDS,
        clock: Clock = utcnow,
    ) -> None:
        self.aws = aws
        self.audience = audience
        self.duration_seconds = duration_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._windows: RefreshWindows | None = None
        self.fetch_count = 0  # GetWebIdentityToken calls that returned a JWT (read by tests)
        _live_suppliers.add(self)
        masking.redact_botocore_wire_secrets()  # botocore logs the answer (DEBUG) before we hold the JWT

    def __repr__(self) -> str:
        return f"WebIdentityTokenSupplier({self.aws.description}, audience={self.audience!r})"

    def get_subject_token(self, context: Any, request: Any) -> str:
        with self._lock:
            now = self.clock()
            if self._token is not None and self._windows is not None and not self._windows.mandatory_due(now):
                return self._token
            token, expiration = self._fetch(now)
            self._windows = jwt_windows(expiration, now)
            self._token = token
            self.fetch_count += 1
            return token

    def last_claims(self) -> dict[str, Any]:
        """The (unverified) claims of the last JWT, for error messages: issuer, subject, account; ``{}`` if none."""
        from airflow_provider_gcp_wif.diagnosis import jwt_claims

        return jwt_claims(self._token) if self._token else {}

    def _fetch(self, now: datetime.datetime) -> tuple[str, datetime.datetime]:
        region = self.aws.get_aws_region(None, None)
        try:
            client = self.aws.regional_sts_client(region)
        except WifExchangeError:
            raise
        except Exception as err:
            raise self.aws._error(f"could not create an AWS STS client for {region}: {err}") from err
        if not hasattr(client, "get_web_identity_token"):
            raise missing_operation_error()
        # The credentials the call will be signed with (refreshed by botocore if they were due), then their expiry.
        self.aws.get_aws_security_credentials(None, None)
        expiry = self.aws.credentials_expiry()
        duration = web_identity_token_duration(self.duration_seconds, expiry,
                                               now.replace(tzinfo=datetime.timezone.utc))
        # Credentials advertised to end before even the shortest JWT: AWS judges against the role *session*, which
        # can outlast them (make mwaa's 60-s container credentials over a 15-minute session), so AWS is asked for
        # the shortest one, and only its refusal is the error below.
        too_short = duration is None
        duration = duration or MIN_JWT_DURATION_SECONDS
        try:
            answer = self._call(client, duration)
        except Exception as err:  # noqa: BLE001 - botocore ClientError, endpoint errors: translated below
            if too_short and expiry is not None and aws_error_code(err) == "SessionDurationEscalationException":
                raise WifExchangeError(
                    "aws_credentials",
                    f"the AWS credentials of {self.aws.description} expire at {expiry:%H:%M:%S} UTC, too soon for "
                    f"GetWebIdentityToken's shortest JWT ({MIN_JWT_DURATION_SECONDS} s) to end before them.",
                    "retry in a minute (botocore renews the credentials ahead of expiry); if it persists, the "
                    "credential source hands out credentials that live under two minutes: lengthen them (the "
                    "role's maximum session duration, or the container credentials' lifetime).",
                ) from None
            if expiry is None and aws_error_code(err) == "SessionDurationEscalationException" and duration > 60:
                # Session credentials whose expiry botocore was not told (a bare AWS_SESSION_TOKEN): the shortest
                # JWT is the one AWS accepts whenever any can be had.
                try:
                    answer = self._call(client, MIN_JWT_DURATION_SECONDS)
                    duration = MIN_JWT_DURATION_SECONDS
                except Exception as again:  # noqa: BLE001 - translated below
                    raise self._translated(again, region) from None
            else:
                raise self._translated(err, region) from None
        token = str(answer["WebIdentityToken"])
        masking.announce(token)
        # On this host's clock: AWS's Expiration is on AWS's, and a host clock behind it would reuse a JWT that
        # Google already calls stale (ahead of it, ask AWS on every call). The JWT's own exp - iat is its lifetime
        # whatever the skew; it counts from before the request.
        from airflow_provider_gcp_wif.diagnosis import jwt_claims

        claims = jwt_claims(token)
        lifetime = claims.get("exp", 0) - claims.get("iat", 0) if all(
            isinstance(claims.get(name), int | float) and not isinstance(claims.get(name), bool)
            for name in ("exp", "iat")) else duration
        return token, now + datetime.timedelta(seconds=max(0, min(duration, lifetime)))

    def _translated(self, err: BaseException, region: str) -> WifExchangeError:
        caller = None
        if aws_error_code(err) in ("AccessDenied", "AccessDeniedException"):
            try:  # names the role in the printed policy command; GetCallerIdentity needs no permission
                caller = self.aws.caller_arn()
            except Exception:  # noqa: BLE001 - best effort
                caller = None
        return translate_aws_error(err, self.aws.description, region, self.audience, caller)

    def _call(self, client: Any, duration: int) -> Any:
        return client.get_web_identity_token(
            Audience=[self.audience], DurationSeconds=duration, SigningAlgorithm=JWT_SIGNING_ALGORITHM
        )

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


def missing_operation_error() -> WifConfigError:
    """``federation: jwt`` under a botocore whose STS model lacks GetWebIdentityToken."""
    import botocore

    return WifConfigError(
        "federation",
        f"jwt needs AWS STS GetWebIdentityToken, which the installed botocore {botocore.__version__} does not know "
        f"(it came with boto3/botocore {GET_WEB_IDENTITY_TOKEN_BOTOCORE}).",
        f"install boto3>={GET_WEB_IDENTITY_TOKEN_BOTOCORE} and botocore>={GET_WEB_IDENTITY_TOKEN_BOTOCORE} (on "
        "MWAA: Airflow 2.11.2, 3.2.1 or later, whose constraints pin such a version), or use federation sigv4.",
    )


def _after_fork_in_child() -> None:
    # Runs before credentials.py's handler (forks.AWS_SUPPLIERS < forks.GOOGLE_CREDENTIALS), which rebuilds
    # credentials and takes the suppliers' locks.
    for supplier in list(_live_suppliers):
        supplier._after_fork()


forks.register(forks.AWS_SUPPLIERS, _after_fork_in_child)
