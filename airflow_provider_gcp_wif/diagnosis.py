"""The diagnosis catalogue: Google's and AWS's error answers translated into :class:`WifExchangeError`.

:func:`translate` maps the bodies listed in ``shared/ERRORS.md`` onto messages with a fix; any other answer
(undocumented, empty, HTML, truncated) still names the step, the HTTP status and Google's text, with the likeliest fix
for that status at that step (:func:`fix_for_status`). Every fix that prints gcloud commands is applied to the
emulated clouds in ``tests/core/test_fix_oracle.py`` and must make the exchange work. Nothing here ever formats a
token, a secret or a subject token into a message: only Google's error text, resource names and ARNs.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.auth import exceptions as google_exceptions

from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.constants import JWT_POLICY_NAME, JWT_SIGNING_ALGORITHM
from airflow_provider_gcp_wif.errors import (
    PROPAGATION_NOTE,
    AnswerEncoded,
    AnswerTooLarge,
    RedirectRefused,
    Step,
    WifExchangeError,
    redact,
)
from airflow_provider_gcp_wif.resource_names import (
    AWS_CLAIMS,
    AWS_ROLE_MAPPING,
    ROLE_ARN,
    SHORT_SUBJECT_MAPPING,
    account_of,
    assumed_role_arn,
    https_audience,
    iam_role_arn,
    jwt_policy_document,
    jwt_short_subject_mapping,
    principal_member,
    provider_name,
    role_arn_of,
    role_member,
    role_name_of,
    sts_host,
)


@dataclass(frozen=True)
class Caller:
    """Who the caller is on AWS, as far as a fix text needs it: looked up lazily (an extra ``GetCallerIdentity``
    to AWS, or the claims of the JWT that was sent), only on the error path, so that a permission denial can print
    the exact member to bind. A lookup that fails leaves the placeholders in the text.
    """

    arn_lookup: Callable[[], str | None] | None = None
    jwt_claims_lookup: Callable[[], dict[str, Any]] | None = None  # jwt: the claims of the JWT that was sent

    def jwt(self) -> dict[str, Any]:
        if self.jwt_claims_lookup is None:
            return {}
        try:
            return self.jwt_claims_lookup()
        except Exception:  # noqa: BLE001 - best effort: it only improves the fix text
            return {}

    def arn(self) -> str | None:
        if self.arn_lookup is None:
            return None
        try:
            return self.arn_lookup()
        except Exception:  # noqa: BLE001 - best effort: it only improves the fix text
            return None


#: Nobody known: the fix texts keep their placeholders for the caller.
UNKNOWN_CALLER = Caller()

#: Settings made of placeholders (``PROJECT_NUMBER``, ``POOL_ID``, ``PROVIDER_ID``, no service account: ``SA_EMAIL``):
#: the fixes as the troubleshooting table shows them, and the fixes of AWS answers that name no Google resource.
PLACEHOLDER_SETTINGS = WifSettings(
    audience=provider_name("PROJECT_NUMBER", "POOL_ID", "PROVIDER_ID"),
    project_number="PROJECT_NUMBER",
    pool_id="POOL_ID",
    provider_id="PROVIDER_ID",
)


#: Placeholders for the AWS role when the caller is unknown: its sessions (sigv4) and its IAM ARN (jwt's ``sub``).
_SOME_ROLE = assumed_role_arn("AWS_ACCOUNT_ID", "AWS_ROLE_NAME")
_SOME_ROLE_ARN = iam_role_arn("AWS_ACCOUNT_ID", "AWS_ROLE_NAME")


def _member_for(s: WifSettings, caller: Caller) -> str:
    if s.federation == "jwt":
        # The OIDC provider that `gcp-wif setup --federation jwt` creates maps attribute.aws_role to the JWT's sub.
        return role_member(s.project_number, s.pool_id, _jwt_subject(caller), s.universe_domain)
    arn = caller.arn()
    if arn:
        return principal_member(s.project_number, s.pool_id, arn, s.universe_domain)
    return role_member(s.project_number, s.pool_id, _SOME_ROLE, s.universe_domain)


def _update(s: WifSettings) -> str:
    """The gcloud verb that updates this route's provider: ``update-aws`` (sigv4) or ``update-oidc`` (jwt)."""
    return "update-oidc" if s.federation == "jwt" else "update-aws"


def _provider_flags(s: WifSettings) -> str:
    return f"{s.provider_id} --workload-identity-pool={s.pool_id} --location=global"


def _doctor(s: WifSettings) -> str:
    return f"gcp-wif doctor --conn-id {s.conn_id}" if s.conn_id else "gcp-wif doctor"


# ---------------------------------------------------------------------------------------------------------------
# The catalogue: (step, predicate over the parsed answer, fix builder). First match wins.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoogleAnswer:
    """An error answer from STS or IAM Credentials, parsed from either of Google's shapes."""

    status: int | None
    code: str  # OAuth ``error`` or google.rpc ``status``
    message: str  # ``error_description`` or ``message``
    reasons: tuple[str, ...]  # google.rpc ErrorInfo reasons

    def says(self, *fragments: str) -> bool:
        text = self.message.lower()
        return all(fragment.lower() in text for fragment in fragments)


def _fix_invalid_target(s: WifSettings, caller: Caller) -> str:
    pool_flags = f"{s.pool_id} --location=global"
    return (
        "check that the audience names an existing, enabled provider (use the project NUMBER): "
        f"`gcloud iam workload-identity-pools providers describe {_provider_flags(s)}`; re-enable the pool "
        f"with `gcloud iam workload-identity-pools update {pool_flags} --no-disabled` and the "
        f"provider with `gcloud iam workload-identity-pools providers {_update(s)} {_provider_flags(s)} "
        "--no-disabled`; a pool or provider deleted less than 30 days ago comes back with "
        f"`gcloud iam workload-identity-pools undelete {pool_flags}` and "
        f"`gcloud iam workload-identity-pools providers undelete {_provider_flags(s)}`."
    )


def _fix_audience_format(s: WifSettings, caller: Caller) -> str:
    return (
        f"set audience to exactly {provider_name('PROJECT_NUMBER', 'POOL_ID', 'PROVIDER_ID', s.universe_domain)} "
        "(or set project_number, pool_id and provider_id instead); print it with "
        f"`gcloud iam workload-identity-pools providers describe {_provider_flags(s)} --format='value(name)'`."
    )


def _fix_attribute_condition(s: WifSettings, caller: Caller) -> str:
    if s.federation == "jwt":
        return _fix_jwt_attribute_condition(s, caller)
    arn = caller.arn()
    role = (role_arn_of(arn) if arn else None) or _SOME_ROLE
    who = f"this worker is {arn}" if arn else "compare `aws sts get-caller-identity` with the condition"
    return (
        f"{who}; read the provider's condition with `gcloud iam workload-identity-pools providers describe "
        f"{_provider_flags(s)} --format='value(attributeCondition,attributeMapping)'` and, if this identity "
        f"should be let in, `gcloud iam workload-identity-pools providers update-aws {_provider_flags(s)} "
        f"--attribute-condition=\"attribute.aws_role=='{role}'\"`."
    )


def _fix_long_subject(s: WifSettings, caller: Caller) -> str:
    if s.federation == "jwt":
        return _fix_jwt_long_subject(s, caller)
    arn = caller.arn()
    size = f" (this worker's ARN {arn} is {len(arn.encode())} bytes)" if arn else ""
    return (
        f"map google.subject to something shorter{size}, keeping Google's default attribute.aws_role (the role "
        "ARN without the session, which attribute conditions and principalSet bindings use): "
        f"`gcloud iam workload-identity-pools providers update-aws {_provider_flags(s)} "
        f"--attribute-mapping=\"google.subject={SHORT_SUBJECT_MAPPING},attribute.aws_role={AWS_ROLE_MAPPING},"
        "attribute.aws_account=assertion.account\"` (add any other attribute your conditions and bindings "
        "use), or use a shorter role session name."
    )


def _fix_signature(s: WifSettings, caller: Caller) -> str:
    return (
        "AWS rejected the signed GetCallerIdentity request: check the AWS connection's access key and secret "
        "(`aws sts get-caller-identity` with the same credentials must work) and that nothing between this "
        "worker and Google rewrites the request; this provider signs a fresh request for every exchange."
    )


def _fix_signature_expired(s: WifSettings, caller: Caller) -> str:
    return (
        "the signed request was more than 15 minutes old when AWS checked it: sync this worker's clock "
        "(chrony/NTP, Amazon Time Sync 169.254.169.123) and never reuse a subject token."
    )


def _fix_aws_token_expired(s: WifSettings, caller: Caller) -> str:
    return (
        "the AWS session credentials had expired: refresh them (re-assume the role, or let boto3 refresh the "
        "instance/task role) — check the AWS connection's role_arn and session duration."
    )


def _fix_aws_key_invalid(s: WifSettings, caller: Caller) -> str:
    return (
        "AWS does not know this access key: check the AWS connection's login/password (or role) with "
        "`aws sts get-caller-identity`; rotate or re-create the key if it was deleted."
    )


def _fix_request_format(s: WifSettings, caller: Caller) -> str:
    return (
        "the serialized GetCallerIdentity request was malformed or lacked the x-goog-cloud-target-resource "
        "header for this audience: upgrade airflow-provider-gcp-wif / google-auth, and make sure the audience "
        "sent equals the one the request was signed for."
    )


def _fix_account_not_allowed(s: WifSettings, caller: Caller) -> str:
    arn = caller.arn()
    account = (account_of(arn) if arn else None) or "AWS_ACCOUNT_ID"
    who = f"this worker's AWS account is {account}; " if arn else ""
    return (
        f"{who}`gcloud iam workload-identity-pools providers update-aws {_provider_flags(s)} "
        f"--account-id={account}` or create a provider for that AWS account; verify with "
        "`aws sts get-caller-identity --query Account`."
    )


def _fix_token_type(s: WifSettings, caller: Caller) -> str:
    return (
        "use grant_type=urn:ietf:params:oauth:grant-type:token-exchange, requested_token_type="
        "urn:ietf:params:oauth:token-type:access_token, subject_token_type=urn:ietf:params:aws:token-type:"
        "aws4_request (a credential_config for OIDC or SAML providers does not fit an AWS connection)."
    )


def _fix_scope_sts(s: WifSettings, caller: Caller) -> str:
    return (
        "set the connection's scope to valid OAuth scopes, e.g. https://www.googleapis.com/auth/cloud-platform "
        "(the default)."
    )


def _fix_service_disabled(service: str) -> Callable[[WifSettings, Caller], str]:
    def fix(s: WifSettings, caller: Caller) -> str:
        return (
            f"`gcloud services enable {service} sts.googleapis.com iamcredentials.googleapis.com "
            f"iam.googleapis.com --project={s.project_number}` (the project that owns the pool), then wait a few "
            "minutes."
        )

    return fix


def _fix_transient(s: WifSettings, caller: Caller) -> str:
    return "a transient Google error: retry with backoff (Airflow task retries do this); if it persists, " + (
        f"run `{_doctor(s)}`."
    )


def _fix_permission_denied(s: WifSettings, caller: Caller) -> str:
    sa = s.service_account or "SA_EMAIL"
    if s.delegates:
        first = s.delegates[0]
        hops = [*s.delegates, sa]
        chain = "; ".join(
            f"`gcloud iam service-accounts add-iam-policy-binding {nxt} --member=serviceAccount:{prev} "
            "--role=roles/iam.serviceAccountTokenCreator`"
            for prev, nxt in itertools.pairwise(hops)
        )
        return (
            f"the impersonation chain is broken: let the federated identity use {first} with "
            f"`gcloud iam service-accounts add-iam-policy-binding {first} --role=roles/iam.workloadIdentityUser "
            f"--member=\"{_member_for(s, caller)}\"`, and grant each hop: {chain}. {PROPAGATION_NOTE} "
            f"Also confirm each account exists: `gcloud iam service-accounts describe {sa}`."
        )
    return (
        f"`gcloud iam service-accounts add-iam-policy-binding {sa} --role=roles/iam.workloadIdentityUser "
        f"--member=\"{_member_for(s, caller)}\"`. {PROPAGATION_NOTE} Also confirm the account exists: "
        f"`gcloud iam service-accounts describe {sa}`."
    )


def _fix_lifetime(s: WifSettings, caller: Caller) -> str:
    sa = s.service_account or "SA_EMAIL"
    return (
        f"set lifetime_seconds to 3600 or less (now {s.lifetime_seconds}), or allow longer tokens for this "
        "account: `gcloud resource-manager org-policies allow "
        f"constraints/iam.allowServiceAccountCredentialLifetimeExtension {sa} --organization=ORG_ID` "
        "(at most 43200 s)."
    )


def _fix_invalid_argument(s: WifSettings, caller: Caller) -> str:
    return (
        "check the connection's scope (OAuth scopes such as https://www.googleapis.com/auth/cloud-platform, not "
        "URLs of your services) and that impersonation_chain holds plain service-account emails without quotes "
        "or spaces."
    )


def _fix_scope_insufficient(s: WifSettings, caller: Caller) -> str:
    return (
        "the federated token's scope does not cover IAM Credentials: include "
        "https://www.googleapis.com/auth/cloud-platform in the connection's scope."
    )


def _fix_unauthenticated(s: WifSettings, caller: Caller) -> str:
    return (
        "the federated token was missing or expired when it reached IAM Credentials: retry (a new exchange is "
        f"made); if it keeps failing, check this worker's clock and run `{_doctor(s)}`."
    )


def _fix_token_type_unsupported(s: WifSettings, caller: Caller) -> str:
    return (
        "federated tokens cannot call signJwt/signBlob: set impersonation_chain so that a service-account "
        "token is used."
    )


def _fix_sa_disabled(s: WifSettings, caller: Caller) -> str:
    sa = s.service_account or "SA_EMAIL"
    project = _project_query(s).removeprefix("?project=") or "PROJECT_ID"
    return f"`gcloud iam service-accounts enable {sa} --project={project}`."


def _fix_rate_limited(s: WifSettings, caller: Caller) -> str:
    return (
        "IAM Credentials quota exhausted (iamcredentials.googleapis.com, \"Generate credentials requests per "
        "minute\"): retry with backoff (Airflow task retries do this); tokens are cached per process, so look for "
        "many short-lived processes; raise the quota of the service account's project in the console: "
        "https://console.cloud.google.com/apis/api/iamcredentials.googleapis.com/quotas"
        f"{_project_query(s)}."
    )


def _fix_sts_rate_limited(s: WifSettings, caller: Caller) -> str:
    return (
        "Security Token Service quota exhausted (sts.googleapis.com, \"Token exchange requests per minute\" of "
        f"project {s.project_number}, which owns the pool): retry with backoff (Airflow task retries do this); "
        "tokens are cached per process, so look for many short-lived processes; raise the quota in the console: "
        f"https://console.cloud.google.com/apis/api/sts.googleapis.com/quotas?project={s.project_number}."
    )


def _project_query(s: WifSettings) -> str:
    sa = s.service_account or ""
    match = re.match(r"^[^@]+@([a-z][a-z0-9-]{4,28}[a-z0-9])\.iam\.gserviceaccount\.com$", sa)
    return f"?project={match.group(1)}" if match else ""


def _fix_sa_not_found(s: WifSettings, caller: Caller) -> str:
    sa = s.service_account or "SA_EMAIL"
    project = _project_query(s).removeprefix("?project=") or "PROJECT_ID"
    return (
        f"the service account {sa} was not found (deleted, mistyped, or in another project): check it with "
        f"`gcloud iam service-accounts describe {sa}` and list the project's accounts with "
        f"`gcloud iam service-accounts list --project={project}`; fix impersonation_chain (the email, not the "
        "display name), or recreate the account and its roles/iam.workloadIdentityUser binding (a deleted account "
        "can be restored within 30 days by its unique id with gcloud iam service-accounts undelete)."
    )


def _sts_fix_for_status(status: int | None, s: WifSettings, caller: Caller) -> str:
    """The likeliest fix for an answer of STS that no catalogue rule explains, by HTTP status."""
    if status is None:
        return (
            "Google STS gave an answer this provider does not recognise: check sts_endpoint (Google's "
            "https://sts.googleapis.com/v1/token or its Private Service Connect name) and any proxy in between."
        )
    if status == 429:
        return _fix_sts_rate_limited(s, caller)
    if status >= 500:
        return _fix_transient(s, caller)
    if status == 400:
        return (
            "Google STS refused the exchange: check the audience names an existing provider (project NUMBER): "
            f"`gcloud iam workload-identity-pools providers describe {_provider_flags(s)} "
            "--format='value(name,state,attributeCondition,attributeMapping)'`, and that the AWS identity is the "
            "one the provider trusts (`aws sts get-caller-identity`)."
        )
    if status == 401:
        return (
            "Google STS does not ask for credentials, so a 401 comes from something between this worker and "
            "Google (an authenticating proxy) or from an sts_endpoint that is not Google's STS: check sts_endpoint "
            "and the HTTPS_PROXY settings."
        )
    if status == 403:
        return (
            "Google STS refused access for the pool's project: enable the API "
            f"(`gcloud services enable sts.googleapis.com --project=PROJECT_ID`, project {s.project_number}) and "
            "check that no VPC Service Controls perimeter or organization policy "
            "(iam.workloadIdentityPoolAwsAccounts, iam.workloadIdentityPoolProviders) excludes this pool."
        )
    if status == 404:
        return (
            "the STS endpoint does not serve /v1/token: set sts_endpoint to https://sts.googleapis.com/v1/token "
            "(or leave it empty; a Private Service Connect name must end in /v1/token too)."
        )
    return (
        f"an HTTP {status} from Google STS is not a documented answer: check sts_endpoint (Google's "
        "https://sts.googleapis.com/v1/token or its Private Service Connect name) and any proxy in between."
    )


def _iam_fix_for_status(status: int | None, s: WifSettings, caller: Caller) -> str:
    """The likeliest fix for an answer of IAM Credentials that no catalogue rule explains, by HTTP status."""
    if status is None:
        return (
            "IAM Credentials gave an answer this provider does not recognise: check iam_endpoint (Google's "
            "https://iamcredentials.googleapis.com or its Private Service Connect name) and any proxy in between."
        )
    if status == 429:
        return _fix_rate_limited(s, caller)
    if status >= 500:
        return _fix_transient(s, caller)
    if status == 400:
        return _fix_invalid_argument(s, caller)
    if status == 401:
        return _fix_unauthenticated(s, caller)
    if status == 403:
        return _fix_permission_denied(s, caller)
    if status == 404:
        return _fix_sa_not_found(s, caller)
    return (
        f"an HTTP {status} from IAM Credentials is not a documented answer: check iam_endpoint (Google's "
        "https://iamcredentials.googleapis.com or its Private Service Connect name) and any proxy in between."
    )


def fix_for_status(step: Step, status: int | None, s: WifSettings, caller: Caller) -> str:
    """The likeliest fix for ``status`` at ``step`` when the answer itself says nothing we recognise."""
    if step == "sts_exchange":
        return _sts_fix_for_status(status, s, caller)
    return _iam_fix_for_status(status, s, caller)



def _jwt_issuer(caller: Caller) -> str:
    return str(caller.jwt().get("iss") or "ISSUER_URL")


def _jwt_subject(caller: Caller) -> str:
    return str(caller.jwt().get("sub") or _SOME_ROLE_ARN)


def _jwt_account(caller: Caller) -> str:
    claims = caller.jwt().get("https://sts.amazonaws.com/")
    account = claims.get("aws_account") if isinstance(claims, dict) else None
    return str(account or account_of(_jwt_subject(caller)) or "AWS_ACCOUNT_ID")


def _jwt_https_audience(s: WifSettings) -> str:
    return https_audience(s.audience)


def _jwt_condition(caller: Caller) -> str:
    return f"{AWS_CLAIMS}.aws_account=='{_jwt_account(caller)}' && assertion.sub=='{_jwt_subject(caller)}'"


def _fix_jwt_attribute_condition(s: WifSettings, caller: Caller) -> str:
    return (
        f"this worker's JWT has sub {_jwt_subject(caller)} (AWS account {_jwt_account(caller)}); read the provider's "
        f"condition with `gcloud iam workload-identity-pools providers describe {_provider_flags(s)} "
        "--format='value(attributeCondition,attributeMapping)'` and, if this identity should be let in, "
        f"`gcloud iam workload-identity-pools providers update-oidc {_provider_flags(s)} "
        f"--attribute-condition=\"{_jwt_condition(caller)}\"`."
    )



def _fix_jwt_long_subject(s: WifSettings, caller: Caller) -> str:
    subject = _jwt_subject(caller)
    match = ROLE_ARN.fullmatch(subject)
    path = match["path"] if match else "/"
    size = f" (this worker's sub {subject} is {len(subject.encode())} bytes)" if caller.jwt() else ""
    return (
        f"map google.subject to the AWS account and role name{size}, keeping attribute.aws_role as the full sub "
        f"(which conditions and principalSet bindings use): `gcloud iam workload-identity-pools providers "
        f"update-oidc {_provider_flags(s)} --attribute-mapping=\"google.subject={jwt_short_subject_mapping(path)},"
        f"attribute.aws_account={AWS_CLAIMS}.aws_account,attribute.aws_role=assertion.sub\"` (add any other "
        "attribute your conditions and bindings use), or give the role a shorter path."
    )


def _fix_jwt_audience(s: WifSettings, caller: Caller) -> str:
    return (
        f"the JWT's audience is {_jwt_https_audience(s)} (this provider's own name, which an OIDC provider accepts "
        "when its allowed audiences are empty); allow it: `gcloud iam workload-identity-pools providers "
        f"update-oidc {_provider_flags(s)} --allowed-audiences={_jwt_https_audience(s)}`."
    )


def _fix_jwt_issuer(s: WifSettings, caller: Caller) -> str:
    return (
        f"the JWT was issued by {_jwt_issuer(caller)} (the AWS account's outbound identity federation issuer, "
        "`aws iam get-outbound-web-identity-federation-info --query IssuerIdentifier`); point the provider at it: "
        f"`gcloud iam workload-identity-pools providers update-oidc {_provider_flags(s)} "
        f"--issuer-uri={_jwt_issuer(caller)}`."
    )


def _fix_jwt_clock(s: WifSettings, caller: Caller) -> str:
    return (
        "Google found the AWS JWT expired or not yet valid: sync this worker's clock (chrony/NTP; on AWS the Amazon "
        "Time Sync Service at 169.254.169.123) and retry; a fresh JWT is asked for each time the cached one nears "
        "its expiry."
    )


def _fix_jwt_signature(s: WifSettings, caller: Caller) -> str:
    return (
        "Google could not verify the AWS JWT's signature with the issuer's keys: if the provider holds uploaded "
        f"keys (--jwk-json-path), re-read them from {_jwt_issuer(caller)}/.well-known/jwks.json or remove them so "
        f"Google fetches them itself: `gcloud iam workload-identity-pools providers describe {_provider_flags(s)} "
        "--format='value(oidc)'`."
    )


def _fix_jwt_issuer_keys(s: WifSettings, caller: Caller) -> str:
    return (
        "Google could not fetch or use the signing key of the JWT from its issuer's JWKS: the provider's issuer "
        f"must be the AWS account's issuer {_jwt_issuer(caller)} (compare `gcloud iam workload-identity-pools "
        f"providers describe {_provider_flags(s)} --format='value(oidc.issuerUri)'` with `aws iam "
        "get-outbound-web-identity-federation-info`), and JWTs must be signed RS256 (Google cannot verify AWS's "
        "ES384 keys; this provider always asks for RS256)."
    )


def _jwt_answer(a: GoogleAnswer) -> bool:
    return a.says("id token") or a.says("jwt")


Rule = tuple[str, Callable[[GoogleAnswer], bool], Callable[[WifSettings, Caller], str]]

_STS_RULES: list[Rule] = [
    ("invalid_target", lambda a: a.code == "invalid_target", _fix_invalid_target),
    ("jwt_audience", lambda a: _jwt_answer(a) and a.says("audience"), _fix_jwt_audience),
    ("jwt_issuer", lambda a: _jwt_answer(a) and a.says("issuer"), _fix_jwt_issuer),
    ("jwt_clock", lambda a: _jwt_answer(a) and (a.says("expired") or a.says("stale") or a.says("future")
                                                 or a.says("not yet valid") or a.says("issued at")), _fix_jwt_clock),
    ("jwt_signature", lambda a: _jwt_answer(a) and (a.says("signature") or a.says("key")), _fix_jwt_signature),
    ("jwt_issuer_keys", lambda a: a.says("error connecting to the given credential's issuer"), _fix_jwt_issuer_keys),
    (
        "audience_format",
        lambda a: a.code == "invalid_request" and a.says("audience") and a.says("full resource name"),
        _fix_audience_format,
    ),
    ("attribute_condition", lambda a: a.says("attribute condition"), _fix_attribute_condition),
    ("subject_too_long", lambda a: a.says("google.subject", "127 bytes"), _fix_long_subject),
    (
        "signature_expired",
        lambda a: a.says("signaturedoesnotmatch") and a.says("signature expired"),
        _fix_signature_expired,
    ),
    ("signature_mismatch", lambda a: a.says("signaturedoesnotmatch"), _fix_signature),
    ("aws_token_expired", lambda a: a.says("expiredtoken"), _fix_aws_token_expired),
    ("aws_key_invalid", lambda a: a.says("invalidclienttokenid"), _fix_aws_key_invalid),
    ("request_format", lambda a: a.says("aws request has invalid format"), _fix_request_format),
    ("subject_unparseable", lambda a: a.says("invalid format of aws credentials"), _fix_request_format),
    ("account_not_allowed", lambda a: a.says("aws account id"), _fix_account_not_allowed),
    ("token_type", lambda a: a.code == "invalid_request" and a.says("token_type"), _fix_token_type),
    ("grant_type", lambda a: a.code == "unsupported_grant_type", _fix_token_type),
    ("invalid_scope", lambda a: a.code == "invalid_scope", _fix_scope_sts),
    ("service_disabled", lambda a: "SERVICE_DISABLED" in a.reasons, _fix_service_disabled("sts.googleapis.com")),
    ("rate_limited", lambda a: a.status == 429 or a.code == "RESOURCE_EXHAUSTED", _fix_sts_rate_limited),
]

_IAM_RULES: list[Rule] = [
    ("service_disabled", lambda a: "SERVICE_DISABLED" in a.reasons,
     _fix_service_disabled("iamcredentials.googleapis.com")),
    ("scope_insufficient", lambda a: "ACCESS_TOKEN_SCOPE_INSUFFICIENT" in a.reasons, _fix_scope_insufficient),
    ("token_type_unsupported", lambda a: "ACCESS_TOKEN_TYPE_UNSUPPORTED" in a.reasons,
     _fix_token_type_unsupported),
    ("permission_denied", lambda a: a.status == 403 or a.code == "PERMISSION_DENIED", _fix_permission_denied),
    ("lifetime", lambda a: a.says("lifetimes of more than 1 hour"), _fix_lifetime),
    ("sa_disabled", lambda a: a.code == "FAILED_PRECONDITION", _fix_sa_disabled),
    ("invalid_argument", lambda a: a.code == "INVALID_ARGUMENT", _fix_invalid_argument),
    ("not_found", lambda a: a.status == 404 or a.code == "NOT_FOUND", _fix_sa_not_found),
    ("unauthenticated", lambda a: a.status == 401 or a.code == "UNAUTHENTICATED", _fix_unauthenticated),
    ("rate_limited", lambda a: a.status == 429 or a.code == "RESOURCE_EXHAUSTED", _fix_rate_limited),
]

_TRANSIENT_CODES = {"INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}


def parse_google_answer(body: str | bytes | dict[str, Any] | None, status: int | None = None) -> GoogleAnswer | None:
    """Parse an OAuth-style (``{"error": "...", "error_description": "..."}``) or google.rpc-style
    (``{"error": {"code", "message", "status", "details"}}``) error body; ``None`` when it is neither."""
    if body is None:
        return None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if not isinstance(body, dict) or "error" not in body:
        return None
    error = body["error"]
    if isinstance(error, str):
        return GoogleAnswer(status, error, str(body.get("error_description", "")), ())
    if isinstance(error, dict):
        reasons = tuple(
            str(detail.get("reason"))
            for detail in error.get("details") or []
            if isinstance(detail, dict) and detail.get("reason")
        )
        code = error.get("code")
        return GoogleAnswer(
            int(code) if isinstance(code, int) else status,
            str(error.get("status", "")),
            str(error.get("message", "")),
            reasons,
        )
    return None


def answer_from_exception(exc: BaseException) -> GoogleAnswer | None:
    """google-auth raises ``OAuthError(details, response_body)`` for STS and ``RefreshError(message,
    response_body)`` for IAM Credentials: find the body among the arguments."""
    for arg in reversed(exc.args):
        answer = parse_google_answer(arg) if isinstance(arg, str | bytes | dict) else None
        if answer is not None:
            return answer
        if isinstance(arg, str):
            # Some google-auth versions put the body after a prefix: "...: {json}".
            start = arg.find("{")
            if start >= 0:
                answer = parse_google_answer(arg[start:])
                if answer is not None:
                    return answer
    return None


MAX_GOOGLE_TEXT = 300


def translate(step: Step, answer: GoogleAnswer, settings: WifSettings, caller: Caller = UNKNOWN_CALLER
              ) -> WifExchangeError:
    """Turn one of Google's error answers into a :class:`WifExchangeError` for ``step``.

    An answer no catalogue rule explains still names the step and the HTTP status, keeps Google's text and gets the
    likeliest fix for that status at that step (:func:`fix_for_status`); ``gcp-wif doctor`` is added, not the fix.
    """
    rules = _STS_RULES if step == "sts_exchange" else _IAM_RULES
    reason = _truncate(redact(answer.message or answer.code))
    if answer.code and answer.code not in reason:
        reason = f"{answer.code}: {reason}"
    retryable = (answer.status is not None and (answer.status == 429 or answer.status >= 500)) or (
        answer.code in _TRANSIENT_CODES
    )
    if answer.status is not None:
        reason = f"HTTP {answer.status} from {_SERVICE[step]}: {reason}"
    for _name, matches, fix in rules:
        if matches(answer):
            return WifExchangeError(step, _sentence(reason), fix(settings, caller), status=answer.status,
                                    code=answer.code, retryable=retryable)
    return _unknown(step, answer.status, _sentence(reason), settings, caller, code=answer.code, retryable=retryable)


def _unknown(step: Step, status: int | None, text: str, s: WifSettings, caller: Caller, *, code: str | None = None,
             retryable: bool = False) -> WifExchangeError:
    if not text.startswith("HTTP "):
        text = f"HTTP {status} from {_SERVICE[step]}: {text}" if status is not None else text
    fix = fix_for_status(step, status, s, caller)
    if "gcp-wif doctor" not in fix:
        fix += f" Then `{_doctor(s)}` checks each step."
    return WifExchangeError(step, text, fix, status=status, code=code, retryable=retryable)


_SERVICE = {"sts_exchange": "Google STS", "impersonation": "IAM Credentials", "aws_credentials": "AWS"}


def describe_body(body: str | bytes | None) -> str:
    """Google's text for the message, whatever came back: JSON as it is, an HTML page by its title, an empty body
    said to be empty; truncated to :data:`MAX_GOOGLE_TEXT` characters."""
    if body is None:
        return "(no body)."
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = body.strip()
    if not text:
        return "(empty body)."
    if re.match(r"(?is)^\s*(<!doctype html|<html|<\?xml|<head|<body)", text) or "</html>" in text.lower():
        title = re.search(r"(?is)<title[^>]*>(.*?)</title>", text)
        heading = title.group(1).strip() if title else re.sub(r"(?s)<[^>]+>", " ", text)
        return _sentence("an HTML page: " + _truncate(" ".join(heading.split())))
    if text.startswith(("{", "[")):
        try:
            json.loads(text)
        except ValueError:
            return _sentence("a truncated or malformed JSON body: " + _truncate(text))
    return _sentence(_truncate(" ".join(text.split())))


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_GOOGLE_TEXT else text[: MAX_GOOGLE_TEXT - 3] + "..."


def _body_of(exc: BaseException) -> str | bytes | None:
    """The response body google-auth put among the exception's arguments (its last string or bytes)."""
    for arg in reversed(exc.args):
        if isinstance(arg, str | bytes):
            return arg
    return None


def translate_exception(
    step: Step, exc: BaseException, settings: WifSettings, caller: Caller = UNKNOWN_CALLER, *,
    status: int | None = None, body: str | bytes | None = None,
) -> WifExchangeError:
    """Translate whatever google-auth raised during ``step``; unknown failures keep their text and name the step.

    ``status`` is the HTTP status of the failed call when the caller saw it (google-auth drops it from its
    exceptions); it is what names the likeliest fix when the body is empty, HTML, truncated or unknown. ``body`` is
    that failed answer's body when the caller saw it: Google's text when google-auth raised something that does
    not carry it (a ``TypeError`` for a JSON body that is not an object).
    """
    if isinstance(exc, WifExchangeError):
        return exc
    setting = "sts_endpoint (or credential_config's token_url)" if step == "sts_exchange" else "iam_endpoint"
    if isinstance(exc, RedirectRefused):
        return WifExchangeError(
            step,
            f"{exc}; the provider never follows a redirect with credentials (it would send the "
            f"{'subject token' if step == 'sts_exchange' else 'federated Bearer token'} to another host).",
            f"point {setting} at the final URL, the one the endpoint redirects to, once you have checked that it "
            "is a Google endpoint you trust (and allowed by [gcp_wif] allowed_endpoint_hosts if it is not Google's).",
            status=exc.status,
        )
    if isinstance(exc, AnswerTooLarge):
        return WifExchangeError(
            step,
            f"{exc}; the provider stopped reading it there (a Google token answer is under a kilobyte).",
            f"check that {setting} is Google's endpoint, or a proxy that passes its answers through unchanged: "
            "something else answered in its place.",
            status=exc.status,
        )
    if isinstance(exc, AnswerEncoded):
        return WifExchangeError(
            step,
            f"{exc}; the provider refused it unread (a compressed body is decoded before it can be capped).",
            f"check that {setting} is Google's endpoint, or a proxy that passes its answers through unchanged and "
            "honours Accept-Encoding: identity: something else answered in its place.",
            status=exc.status,
        )
    carries_body = isinstance(exc, google_exceptions.GoogleAuthError)  # google-auth's own: the body is an argument
    answer = answer_from_exception(exc) if carries_body or body is None else parse_google_answer(body)
    if answer is not None:
        if answer.status is None and status is not None:
            answer = GoogleAnswer(status, answer.code, answer.message, answer.reasons)
        return translate(step, answer, settings, caller)
    if status is not None and step != "aws_credentials" and status >= 400:
        retryable = status == 429 or status >= 500
        shown = _body_of(exc) if carries_body or body is None else body
        return _unknown(step, status, redact(describe_body(shown)), settings, caller, retryable=retryable)
    # Resets and timeouts (TransportError) and malformed answers (a 200 that is not JSON, or lacks the token)
    # are worth another attempt; google-auth lets them escape without a status.
    retryable = (
        bool(getattr(exc, "retryable", False))
        or isinstance(exc, google_exceptions.TransportError | json.JSONDecodeError)
        or "invalid expiration in response" in str(exc)
    )
    text = _sentence(redact(str(exc.args[0])) if exc.args else type(exc).__name__)
    fix = _fix_transient(settings, caller) if retryable else f"run `{_doctor(settings)}` for a step-by-step check."
    return WifExchangeError(step, text, fix, retryable=retryable)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."



def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (for messages and the doctor: Google verifies the signature); ``{}`` when it
    is not a JWT."""
    import base64

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def aws_answer(err: BaseException) -> tuple[dict[str, Any], Any]:
    """The ``Error`` member of a botocore ``ClientError``'s answer and its HTTP status (``{}`` and ``None`` for
    anything else, e.g. a connection failure)."""
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return {}, None
    error = response.get("Error", {})
    meta = response.get("ResponseMetadata")
    return (error if isinstance(error, dict) else {}), (meta.get("HTTPStatusCode") if isinstance(meta, dict) else None)


def aws_error_code(err: BaseException) -> str:
    """AWS's error code of a botocore ``ClientError`` (``AccessDenied``, ...); ``""`` for anything else."""
    return str(aws_answer(err)[0].get("Code", ""))


def translate_aws_error(
    err: BaseException, source: str, region: str, audience: str, caller_arn: str | None = None
) -> WifExchangeError:
    """A failed ``GetWebIdentityToken`` (botocore ``ClientError`` or a connection failure) as a
    :class:`WifExchangeError` at step ``aws_credentials``, with AWS's code and message and the fix."""
    error, status = aws_answer(err)
    code = aws_error_code(err)
    message = _truncate(redact(str(error.get("Message", ""))))
    where = f"AWS STS GetWebIdentityToken ({region}) for {source}"
    if not code:
        return WifExchangeError(
            "aws_credentials", _sentence(f"{where} failed: {type(err).__name__}: {_truncate(redact(str(err)))}"),
            f"check that this worker reaches the regional endpoint {sts_host(region)} (a VPC endpoint for "
            "STS, or a NAT route), then retry.", retryable=True)
    reason = _sentence(f"{where} answered {code}" + (f": {message}" if message else ""))
    role = role_name_of(caller_arn) or "ROLE_NAME"
    if code == "OutboundWebIdentityFederationDisabledException":
        fix = ("IAM outbound identity federation is not enabled in this AWS account: an administrator of the "
               "account runs `aws iam enable-outbound-web-identity-federation` once (it prints the account's issuer "
               "URL, which the Google OIDC provider's --issuer-uri must be); or use federation sigv4.")
    elif code in ("AccessDenied", "AccessDeniedException"):
        fix = (f"allow the role to ask for JWTs for this audience: `aws iam put-role-policy --role-name {role} "
               f"--policy-name {JWT_POLICY_NAME} --policy-document '{jwt_policy_document(audience)}'` "
               "(`gcp-wif setup --federation jwt` prints it too); a service control policy or permissions boundary "
               "must allow sts:GetWebIdentityToken as well.")
    elif code == "SessionDurationEscalationException":
        fix = ("the JWT would have outlived the AWS session credentials: give the credential source longer-lived "
               "credentials (the role's session duration), or retry once botocore has renewed them.")
    elif code in ("ExpiredToken", "ExpiredTokenException"):
        fix = _fix_aws_token_expired(PLACEHOLDER_SETTINGS, UNKNOWN_CALLER)
    elif code in ("InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"):
        fix = _fix_aws_key_invalid(PLACEHOLDER_SETTINGS, UNKNOWN_CALLER)
    elif code in ("Throttling", "ThrottlingException", "ServiceUnavailable", "InternalFailure", "RequestLimitExceeded"):
        return WifExchangeError("aws_credentials", reason, "retry later; AWS STS is throttling or unavailable.",
                                status=status, code=code, retryable=True)
    else:
        fix = ("check the AWS identity with `aws sts get-web-identity-token --audience "
               f"{audience} --signing-algorithm {JWT_SIGNING_ALGORITHM} --region {region}` using the same credentials.")
    return WifExchangeError("aws_credentials", reason, fix, status=status, code=code)

