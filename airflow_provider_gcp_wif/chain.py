"""The google-auth credentials of one exchange: STS (with our audience-bound subject tokens, or AWS-signed JWTs),
then, with an impersonation chain, IAM Credentials ``generateAccessToken``.

The exchange itself is google-auth's: ``google.auth.aws.Credentials`` with our boto3 supplier does the STS token
exchange, ``google.auth.impersonated_credentials.Credentials`` the ``generateAccessToken`` call (with ``delegates``
for chains, which google-auth's built-in external-account impersonation lacks). This module adds:

1. **Audience-bound subject tokens.** google-auth adds ``x-goog-cloud-target-resource`` *after* signing, so its
   subject tokens can be replayed against any other provider that trusts the same AWS role. We sign it
   (google-auth's own ``RequestSigner`` signs ``additional_headers``). A fresh request is signed for every exchange.
2. **Step-named errors.** Failures come out as :class:`~airflow_provider_gcp_wif.errors.WifExchangeError` saying
   which step failed (``aws_credentials``, ``sts_exchange``, ``impersonation``), Google's reason and the fix.
3. **No credential leaves by a side door.** STS and IAM Credentials requests go through the provider's own
   transport, which never follows a redirect (:func:`~airflow_provider_gcp_wif.transport.exchange_transport`),
   whatever transport the caller passed; every token is announced to the secrets masker before it can be logged; a
   failure chains a sanitised copy of google-auth's exception (whose arguments can hold a response body with a live
   token), never the original.

Nothing here is shared or cached: :mod:`~airflow_provider_gcp_wif.credentials` holds one chain per
:class:`~airflow_provider_gcp_wif.credentials.WifCredentials` and decides when it refreshes.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from typing import Any

from google.auth import aws, external_account, identity_pool, impersonated_credentials
from google.auth import credentials as google_credentials

from airflow_provider_gcp_wif import masking
from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.constants import (
    AWS_SUBJECT_TOKEN_TYPE,
    GET_CALLER_IDENTITY_URL,
    IAM_SCOPE,
    JWT_SUBJECT_TOKEN_TYPE,
    TARGET_RESOURCE_HEADER,
)
from airflow_provider_gcp_wif.diagnosis import UNKNOWN_CALLER, Caller, translate_exception
from airflow_provider_gcp_wif.errors import Step, WifConfigError, WifExchangeError, sanitized_cause
from airflow_provider_gcp_wif.resource_names import https_audience, sts_host
from airflow_provider_gcp_wif.supplier import Boto3Supplier, WebIdentityTokenSupplier
from airflow_provider_gcp_wif.transport import exchange_transport


class _StatusRecorder:
    """Passes requests through to google-auth's transport and remembers the last HTTP status, which google-auth
    drops from the exceptions it raises for error answers, and an error answer's body, which it can drop too (its
    OAuth error handler raises a bare ``TypeError`` for a JSON body that is not an object). A successful answer's
    body (it carries the token) is never kept."""

    def __init__(self, request: Any) -> None:
        self._request = request
        self.status: int | None = None
        self.error_body: bytes | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        response = self._request(*args, **kwargs)
        self.status = getattr(response, "status", None)
        failed = isinstance(self.status, int) and self.status >= 400
        self.error_body = getattr(response, "data", None) if failed else None
        return response


@dataclasses.dataclass(frozen=True)
class WifContext:
    """What a failed step's error names: the settings and who the AWS caller is."""

    settings: WifSettings
    caller: Caller


class _NamedStep:
    """What our three google-auth credential classes share. Their context is a constructor argument, so every copy
    google-auth makes (``with_scopes``, ``with_quota_project``, ...: ``_constructor_args`` for external accounts, the
    source credentials for impersonation) keeps it; their refresh goes through :func:`exchange_transport` whatever
    transport the caller passed, announces the new token, and turns any failure into a
    :class:`~airflow_provider_gcp_wif.errors.WifExchangeError` naming ``step``, except our own errors, which
    surface as they are: a ``WifExchangeError`` of an earlier step, and a ``WifConfigError`` (a setting the AWS side
    cannot serve, found before anything is sent)."""

    step: Step
    token: Any

    def __init__(self, *args: Any, wif: WifContext, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wif = wif

    def _constructor_args(self) -> dict[str, Any]:
        args: dict[str, Any] = super()._constructor_args()  # type: ignore[misc]
        args["wif"] = self.wif
        return args

    def _secrets(self) -> list[str | None]:
        """The tokens a sanitised cause must not carry."""
        return [self.token]

    def refresh(self, request: Any) -> None:
        # ``request`` (whatever transport the caller holds) is not used: see exchange_transport().
        recorder = _StatusRecorder(exchange_transport())
        try:
            super().refresh(recorder)  # type: ignore[misc]
        except (WifExchangeError, WifConfigError):
            raise  # an earlier step failed (or the AWS side cannot serve a setting): already named
        except Exception as exc:  # noqa: BLE001 - re-raised below as a WifExchangeError
            error = translate_exception(self.step, exc, self.wif.settings, self.wif.caller, status=recorder.status,
                                        body=recorder.error_body)
            cause = sanitized_cause(exc, self._secrets())
        else:
            masking.announce(self.token)  # before the next step sends it (and google-auth logs it)
            return
        raise error from cause


class _FederatedCredentials(_NamedStep, aws.Credentials):
    """``aws.Credentials`` that signs the audience into each subject token and names the STS step on failure."""

    step = "sts_exchange"

    def __init__(self, *args: Any, audience: str, subject_token_type: str,
                 aws_security_credentials_supplier: aws.AwsSecurityCredentialsSupplier, **kwargs: Any) -> None:
        super().__init__(*args, audience=audience, subject_token_type=subject_token_type,
                         aws_security_credentials_supplier=aws_security_credentials_supplier, **kwargs)
        # Our own copies of what signing needs (google-auth's copies pass these arguments again): nothing below
        # reads google-auth's private attributes.
        self.signed_audience = audience
        self.aws_supplier = aws_security_credentials_supplier
        self.supplier_context = external_account.SupplierContext(subject_token_type, audience)

    def retrieve_subject_token(self, request: Any) -> str:
        supplier, context = self.aws_supplier, self.supplier_context
        region = supplier.get_aws_region(context, request)
        aws_credentials = supplier.get_aws_security_credentials(context, request)
        signed = aws.RequestSigner(region).get_request_options(
            aws_credentials,
            GET_CALLER_IDENTITY_URL.format(host=sts_host(region)),
            "POST",
            additional_headers={TARGET_RESOURCE_HEADER: self.signed_audience},
        )
        serialized = {
            "url": signed["url"],
            "method": signed["method"],
            "headers": [{"key": key, "value": value} for key, value in signed["headers"].items()],
        }
        subject_token = urllib.parse.quote(json.dumps(serialized, separators=(",", ":"), sort_keys=True))
        # Announced before it is sent: google-auth's request logging writes it before we see any answer. Its
        # signature and session token, not the whole subject token: see masking.signed_request_secrets.
        masking.announce(*masking.signed_request_secrets(signed["headers"].get("Authorization") or subject_token,
                                                         aws_credentials.session_token))
        return subject_token


class _OidcFederatedCredentials(_NamedStep, identity_pool.Credentials):
    """``identity_pool.Credentials`` over AWS-signed JWTs (``federation: jwt``) that names the STS step on failure.
    The JWT is bound to its audience by AWS's signature (its ``aud`` claim), so nothing needs signing here."""

    step = "sts_exchange"


def jwt_audience(settings: WifSettings) -> str:
    """The ``aud`` of the AWS JWT: the provider's name in the ``https://iam.<universe>/...`` form that Google's
    OIDC providers accept by default (when ``allowed_audiences`` is empty)."""
    return https_audience(settings.audience)


def web_identity_token_supplier(settings: WifSettings, supplier: Boto3Supplier) -> WebIdentityTokenSupplier:
    """The one JWT supplier of this AWS identity for the settings' audience (see
    :meth:`~airflow_provider_gcp_wif.supplier.Boto3Supplier.web_identity_token_supplier`)."""
    return supplier.web_identity_token_supplier(jwt_audience(settings))


class _FederatedSource(google_credentials.Credentials):
    """The impersonation's source as google-auth sees it: a window onto the chain's federated credentials, which
    we hold. google-auth keeps a (shallow) copy of its source and re-scopes it when it can, so handing it the
    federated credentials themselves would leave us a token we could only read back out of google-auth's private
    attributes; every copy of this window refreshes and reads the one federated credential instead (so ID tokens,
    access tokens and every ``with_*`` copy share one STS exchange). It carries the chain's context to the
    impersonated credentials' constructor, which google-auth's copies call with the source alone."""

    def __init__(self, federated: _FederatedCredentials | _OidcFederatedCredentials) -> None:
        super().__init__()
        self.federated = federated
        self.wif = federated.wif

    @property
    def universe_domain(self) -> str:
        return str(self.federated.universe_domain)

    def refresh(self, request: Any) -> None:
        if not self.federated.valid:
            self.federated.refresh(request)
        self.token, self.expiry = self.federated.token, self.federated.expiry


class _ImpersonatedCredentials(_NamedStep, impersonated_credentials.Credentials):
    """``impersonated_credentials.Credentials`` that names the impersonation step on failure."""

    step = "impersonation"

    def __init__(self, source_credentials: _FederatedSource, *args: Any, **kwargs: Any) -> None:
        # google-auth's copies (``_make_copy``) pass the source and google-auth's own arguments only: the context
        # and the federated credentials come with the source.
        self.federated = source_credentials.federated
        super().__init__(source_credentials, *args, wif=source_credentials.wif, **kwargs)

    def _secrets(self) -> list[str | None]:
        return [self.token, self.federated.token]


class CredentialChain:
    """The google-auth credentials of one exchange, held here rather than read back out of google-auth:
    ``federated`` (the STS step) and ``final``, whose token callers use (``federated`` itself for direct resource
    access, else the impersonated credentials over it). No I/O happens on construction."""

    def __init__(self, federated: _FederatedCredentials | _OidcFederatedCredentials,
                 final: google_credentials.Credentials) -> None:
        self.federated = federated
        self.final = final

    @property
    def impersonating(self) -> bool:
        return self.final is not self.federated

    def federated_token(self, request: Any) -> str:
        """A live federated token (refreshed, without retries, when it is not valid)."""
        if not self.federated.valid:
            self.federated.refresh(request)
        return str(self.federated.token)


def build_chain(settings: WifSettings, supplier: Boto3Supplier) -> CredentialChain:
    """The google-auth credentials for ``settings`` (not shared, not refreshed: no I/O happens here)."""
    wif = WifContext(settings, caller_of(settings, supplier))
    impersonating = bool(settings.impersonation_chain)
    common: dict[str, Any] = dict(
        audience=settings.audience,
        token_url=settings.sts_endpoint,
        # Impersonation needs a federated token that may call IAM Credentials, and nothing more (as google-auth
        # re-scopes an impersonation's source): a leaked federated token is then no key to other Google APIs. The
        # requested scopes go to generateAccessToken instead (ERRORS.md:
        # iamcredentials_scope_insufficient_on_federated_token).
        scopes=[IAM_SCOPE] if impersonating else list(settings.scopes),
        quota_project_id=None if impersonating else settings.quota_project_id,
        universe_domain=settings.universe_domain,
        wif=wif,
    )
    federated: _FederatedCredentials | _OidcFederatedCredentials
    if settings.federation == "jwt":
        federated = _OidcFederatedCredentials(
            subject_token_type=JWT_SUBJECT_TOKEN_TYPE,
            subject_token_supplier=web_identity_token_supplier(settings, supplier),
            **common,
        )
    else:
        federated = _FederatedCredentials(
            subject_token_type=AWS_SUBJECT_TOKEN_TYPE, aws_security_credentials_supplier=supplier, **common
        )
    if not impersonating:
        return CredentialChain(federated, federated)
    assert settings.service_account is not None
    impersonated = _ImpersonatedCredentials(
        _FederatedSource(federated),
        target_principal=settings.service_account,
        target_scopes=list(settings.scopes),
        delegates=[f"projects/-/serviceAccounts/{email}" for email in settings.delegates] or None,
        lifetime=settings.lifetime_seconds,
        quota_project_id=settings.quota_project_id,
        iam_endpoint_override=settings.impersonation_url(settings.service_account),
    )
    return CredentialChain(federated, impersonated)


def caller_of(settings: WifSettings, supplier: Boto3Supplier | None) -> Caller:
    """Who the fix texts may name: the AWS caller's ARN and (federation jwt) the claims of the JWT that was sent,
    looked up only when an error is translated."""
    if supplier is None:
        return UNKNOWN_CALLER
    return Caller(
        arn_lookup=supplier.caller_arn,
        jwt_claims_lookup=(lambda: web_identity_token_supplier(settings, supplier).last_claims())
        if settings.federation == "jwt" else None,
    )
