"""The catalogue of Google's documented error answers and the fix text for each: :data:`STS_RULES` and
:data:`IAM_RULES` (rule name, which answers it matches, the fix), and :func:`fix_for_status`, the likeliest fix by
HTTP status when no rule matches. Declarative: :mod:`airflow_provider_gcp_wif.diagnosis` parses the answers and
applies the rules.

Every fix that prints gcloud commands is applied to the emulated clouds in ``tests/core/test_fix_oracle.py`` and must
make the exchange work; the fixes with placeholders are docs/troubleshooting.md's table
(``scripts/troubleshooting_table.py``). A fix names resources and ARNs only, never a token or a secret.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.errors import (
    PROPAGATION_NOTE,
    Step,
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
    jwt_short_subject_mapping,
    principal_member,
    provider_name,
    role_arn_of,
    role_member,
)

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.diagnosis import Caller, GoogleAnswer


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


def doctor_invocation(s: WifSettings) -> str:
    """The ``gcp-wif doctor`` command line for these settings' connection."""
    return f"gcp-wif doctor --conn-id {s.conn_id}" if s.conn_id else "gcp-wif doctor"


def fix_invalid_target(s: WifSettings, caller: Caller) -> str:
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


def fix_audience_format(s: WifSettings, caller: Caller) -> str:
    return (
        f"set audience to exactly {provider_name('PROJECT_NUMBER', 'POOL_ID', 'PROVIDER_ID', s.universe_domain)} "
        "(or set project_number, pool_id and provider_id instead); print it with "
        f"`gcloud iam workload-identity-pools providers describe {_provider_flags(s)} --format='value(name)'`."
    )


def fix_attribute_condition(s: WifSettings, caller: Caller) -> str:
    if s.federation == "jwt":
        return fix_jwt_attribute_condition(s, caller)
    arn = caller.arn()
    role = (role_arn_of(arn) if arn else None) or _SOME_ROLE
    who = f"this worker is {arn}" if arn else "compare `aws sts get-caller-identity` with the condition"
    return (
        f"{who}; read the provider's condition with `gcloud iam workload-identity-pools providers describe "
        f"{_provider_flags(s)} --format='value(attributeCondition,attributeMapping)'` and, if this identity "
        f"should be let in, `gcloud iam workload-identity-pools providers update-aws {_provider_flags(s)} "
        f"--attribute-condition=\"attribute.aws_role=='{role}'\"`."
    )


def fix_long_subject(s: WifSettings, caller: Caller) -> str:
    if s.federation == "jwt":
        return fix_jwt_long_subject(s, caller)
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


def fix_signature(s: WifSettings, caller: Caller) -> str:
    return (
        "AWS rejected the signed GetCallerIdentity request: check the AWS connection's access key and secret "
        "(`aws sts get-caller-identity` with the same credentials must work) and that nothing between this "
        "worker and Google rewrites the request; this provider signs a fresh request for every exchange."
    )


def fix_signature_expired(s: WifSettings, caller: Caller) -> str:
    return (
        "the signed request was more than 15 minutes old when AWS checked it: sync this worker's clock "
        "(chrony/NTP, Amazon Time Sync 169.254.169.123) and never reuse a subject token."
    )


def fix_aws_token_expired(s: WifSettings, caller: Caller) -> str:
    return (
        "the AWS session credentials had expired: refresh them (re-assume the role, or let boto3 refresh the "
        "instance/task role) — check the AWS connection's role_arn and session duration."
    )


def fix_aws_key_invalid(s: WifSettings, caller: Caller) -> str:
    return (
        "AWS does not know this access key: check the AWS connection's login/password (or role) with "
        "`aws sts get-caller-identity`; rotate or re-create the key if it was deleted."
    )


def fix_request_format(s: WifSettings, caller: Caller) -> str:
    return (
        "the serialized GetCallerIdentity request was malformed or lacked the x-goog-cloud-target-resource "
        "header for this audience: upgrade airflow-provider-gcp-wif / google-auth, and make sure the audience "
        "sent equals the one the request was signed for."
    )


def fix_account_not_allowed(s: WifSettings, caller: Caller) -> str:
    arn = caller.arn()
    account = (account_of(arn) if arn else None) or "AWS_ACCOUNT_ID"
    who = f"this worker's AWS account is {account}; " if arn else ""
    return (
        f"{who}`gcloud iam workload-identity-pools providers update-aws {_provider_flags(s)} "
        f"--account-id={account}` or create a provider for that AWS account; verify with "
        "`aws sts get-caller-identity --query Account`."
    )


def fix_token_type(s: WifSettings, caller: Caller) -> str:
    return (
        "use grant_type=urn:ietf:params:oauth:grant-type:token-exchange, requested_token_type="
        "urn:ietf:params:oauth:token-type:access_token, subject_token_type=urn:ietf:params:aws:token-type:"
        "aws4_request (a credential_config for OIDC or SAML providers does not fit an AWS connection)."
    )


def fix_scope_sts(s: WifSettings, caller: Caller) -> str:
    return (
        "set the connection's scope to valid OAuth scopes, e.g. https://www.googleapis.com/auth/cloud-platform "
        "(the default)."
    )


def fix_service_disabled(service: str) -> Callable[[WifSettings, Caller], str]:
    def fix(s: WifSettings, caller: Caller) -> str:
        return (
            f"`gcloud services enable {service} sts.googleapis.com iamcredentials.googleapis.com "
            f"iam.googleapis.com --project={s.project_number}` (the project that owns the pool), then wait a few "
            "minutes."
        )

    return fix


def fix_transient(s: WifSettings, caller: Caller) -> str:
    return "a transient Google error: retry with backoff (Airflow task retries do this); if it persists, " + (
        f"run `{doctor_invocation(s)}`."
    )


def fix_permission_denied(s: WifSettings, caller: Caller) -> str:
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


def fix_lifetime(s: WifSettings, caller: Caller) -> str:
    sa = s.service_account or "SA_EMAIL"
    return (
        f"set lifetime_seconds to 3600 or less (now {s.lifetime_seconds}), or allow longer tokens for this "
        "account: `gcloud resource-manager org-policies allow "
        f"constraints/iam.allowServiceAccountCredentialLifetimeExtension {sa} --organization=ORG_ID` "
        "(at most 43200 s)."
    )


def fix_invalid_argument(s: WifSettings, caller: Caller) -> str:
    return (
        "check the connection's scope (OAuth scopes such as https://www.googleapis.com/auth/cloud-platform, not "
        "URLs of your services) and that impersonation_chain holds plain service-account emails without quotes "
        "or spaces."
    )


def fix_scope_insufficient(s: WifSettings, caller: Caller) -> str:
    return (
        "the federated token's scope does not cover IAM Credentials: include "
        "https://www.googleapis.com/auth/cloud-platform in the connection's scope."
    )


def fix_unauthenticated(s: WifSettings, caller: Caller) -> str:
    return (
        "the federated token was missing or expired when it reached IAM Credentials: retry (a new exchange is "
        f"made); if it keeps failing, check this worker's clock and run `{doctor_invocation(s)}`."
    )


def fix_token_type_unsupported(s: WifSettings, caller: Caller) -> str:
    return (
        "federated tokens cannot call signJwt/signBlob: set impersonation_chain so that a service-account "
        "token is used."
    )


def fix_sa_disabled(s: WifSettings, caller: Caller) -> str:
    sa = s.service_account or "SA_EMAIL"
    project = _project_query(s).removeprefix("?project=") or "PROJECT_ID"
    return f"`gcloud iam service-accounts enable {sa} --project={project}`."


def fix_rate_limited(s: WifSettings, caller: Caller) -> str:
    return (
        "IAM Credentials quota exhausted (iamcredentials.googleapis.com, \"Generate credentials requests per "
        "minute\"): retry with backoff (Airflow task retries do this); tokens are cached per process, so look for "
        "many short-lived processes; raise the quota of the service account's project in the console: "
        "https://console.cloud.google.com/apis/api/iamcredentials.googleapis.com/quotas"
        f"{_project_query(s)}."
    )


def fix_sts_rate_limited(s: WifSettings, caller: Caller) -> str:
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


def fix_sa_not_found(s: WifSettings, caller: Caller) -> str:
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
        return fix_sts_rate_limited(s, caller)
    if status >= 500:
        return fix_transient(s, caller)
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
        return fix_rate_limited(s, caller)
    if status >= 500:
        return fix_transient(s, caller)
    if status == 400:
        return fix_invalid_argument(s, caller)
    if status == 401:
        return fix_unauthenticated(s, caller)
    if status == 403:
        return fix_permission_denied(s, caller)
    if status == 404:
        return fix_sa_not_found(s, caller)
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


def fix_jwt_attribute_condition(s: WifSettings, caller: Caller) -> str:
    return (
        f"this worker's JWT has sub {_jwt_subject(caller)} (AWS account {_jwt_account(caller)}); read the provider's "
        f"condition with `gcloud iam workload-identity-pools providers describe {_provider_flags(s)} "
        "--format='value(attributeCondition,attributeMapping)'` and, if this identity should be let in, "
        f"`gcloud iam workload-identity-pools providers update-oidc {_provider_flags(s)} "
        f"--attribute-condition=\"{_jwt_condition(caller)}\"`."
    )



def fix_jwt_long_subject(s: WifSettings, caller: Caller) -> str:
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


def fix_jwt_audience(s: WifSettings, caller: Caller) -> str:
    return (
        f"the JWT's audience is {_jwt_https_audience(s)} (this provider's own name, which an OIDC provider accepts "
        "when its allowed audiences are empty); allow it: `gcloud iam workload-identity-pools providers "
        f"update-oidc {_provider_flags(s)} --allowed-audiences={_jwt_https_audience(s)}`."
    )


def fix_jwt_issuer(s: WifSettings, caller: Caller) -> str:
    return (
        f"the JWT was issued by {_jwt_issuer(caller)} (the AWS account's outbound identity federation issuer, "
        "`aws iam get-outbound-web-identity-federation-info --query IssuerIdentifier`); point the provider at it: "
        f"`gcloud iam workload-identity-pools providers update-oidc {_provider_flags(s)} "
        f"--issuer-uri={_jwt_issuer(caller)}`."
    )


def fix_jwt_clock(s: WifSettings, caller: Caller) -> str:
    return (
        "Google found the AWS JWT expired or not yet valid: sync this worker's clock (chrony/NTP; on AWS the Amazon "
        "Time Sync Service at 169.254.169.123) and retry; a fresh JWT is asked for each time the cached one nears "
        "its expiry."
    )


def fix_jwt_signature(s: WifSettings, caller: Caller) -> str:
    return (
        "Google could not verify the AWS JWT's signature with the issuer's keys: if the provider holds uploaded "
        f"keys (--jwk-json-path), re-read them from {_jwt_issuer(caller)}/.well-known/jwks.json or remove them so "
        f"Google fetches them itself: `gcloud iam workload-identity-pools providers describe {_provider_flags(s)} "
        "--format='value(oidc)'`."
    )


def fix_jwt_issuer_keys(s: WifSettings, caller: Caller) -> str:
    return (
        "Google could not fetch or use the signing key of the JWT from its issuer's JWKS: the provider's issuer "
        f"must be the AWS account's issuer {_jwt_issuer(caller)} (compare `gcloud iam workload-identity-pools "
        f"providers describe {_provider_flags(s)} --format='value(oidc.issuerUri)'` with `aws iam "
        "get-outbound-web-identity-federation-info`), and JWTs must be signed RS256 (Google cannot verify AWS's "
        "ES384 keys; this provider always asks for RS256)."
    )


def _jwt_answer(a: GoogleAnswer) -> bool:
    return a.says("id token") or a.says("jwt")


#: (rule name, predicate over the parsed answer, fix builder). First match wins.
Rule: TypeAlias = "tuple[str, Callable[[GoogleAnswer], bool], Callable[[WifSettings, Caller], str]]"

STS_RULES: list[Rule] = [
    ("invalid_target", lambda a: a.code == "invalid_target", fix_invalid_target),
    ("jwt_audience", lambda a: _jwt_answer(a) and a.says("audience"), fix_jwt_audience),
    ("jwt_issuer", lambda a: _jwt_answer(a) and a.says("issuer"), fix_jwt_issuer),
    ("jwt_clock", lambda a: _jwt_answer(a) and (a.says("expired") or a.says("stale") or a.says("future")
                                                 or a.says("not yet valid") or a.says("issued at")), fix_jwt_clock),
    ("jwt_signature", lambda a: _jwt_answer(a) and (a.says("signature") or a.says("key")), fix_jwt_signature),
    ("jwt_issuer_keys", lambda a: a.says("error connecting to the given credential's issuer"), fix_jwt_issuer_keys),
    (
        "audience_format",
        lambda a: a.code == "invalid_request" and a.says("audience") and a.says("full resource name"),
        fix_audience_format,
    ),
    ("attribute_condition", lambda a: a.says("attribute condition"), fix_attribute_condition),
    ("subject_too_long", lambda a: a.says("google.subject", "127 bytes"), fix_long_subject),
    (
        "signature_expired",
        lambda a: a.says("signaturedoesnotmatch") and a.says("signature expired"),
        fix_signature_expired,
    ),
    ("signature_mismatch", lambda a: a.says("signaturedoesnotmatch"), fix_signature),
    ("aws_token_expired", lambda a: a.says("expiredtoken"), fix_aws_token_expired),
    ("aws_key_invalid", lambda a: a.says("invalidclienttokenid"), fix_aws_key_invalid),
    ("request_format", lambda a: a.says("aws request has invalid format"), fix_request_format),
    ("subject_unparseable", lambda a: a.says("invalid format of aws credentials"), fix_request_format),
    ("account_not_allowed", lambda a: a.says("aws account id"), fix_account_not_allowed),
    ("token_type", lambda a: a.code == "invalid_request" and a.says("token_type"), fix_token_type),
    ("grant_type", lambda a: a.code == "unsupported_grant_type", fix_token_type),
    ("invalid_scope", lambda a: a.code == "invalid_scope", fix_scope_sts),
    ("service_disabled", lambda a: "SERVICE_DISABLED" in a.reasons, fix_service_disabled("sts.googleapis.com")),
    ("rate_limited", lambda a: a.status == 429 or a.code == "RESOURCE_EXHAUSTED", fix_sts_rate_limited),
]

IAM_RULES: list[Rule] = [
    ("service_disabled", lambda a: "SERVICE_DISABLED" in a.reasons,
     fix_service_disabled("iamcredentials.googleapis.com")),
    ("scope_insufficient", lambda a: "ACCESS_TOKEN_SCOPE_INSUFFICIENT" in a.reasons, fix_scope_insufficient),
    ("token_type_unsupported", lambda a: "ACCESS_TOKEN_TYPE_UNSUPPORTED" in a.reasons,
     fix_token_type_unsupported),
    ("permission_denied", lambda a: a.status == 403 or a.code == "PERMISSION_DENIED", fix_permission_denied),
    ("lifetime", lambda a: a.says("lifetimes of more than 1 hour"), fix_lifetime),
    ("sa_disabled", lambda a: a.code == "FAILED_PRECONDITION", fix_sa_disabled),
    ("invalid_argument", lambda a: a.code == "INVALID_ARGUMENT", fix_invalid_argument),
    ("not_found", lambda a: a.status == 404 or a.code == "NOT_FOUND", fix_sa_not_found),
    ("unauthenticated", lambda a: a.status == 401 or a.code == "UNAUTHENTICATED", fix_unauthenticated),
    ("rate_limited", lambda a: a.status == 429 or a.code == "RESOURCE_EXHAUSTED", fix_rate_limited),
]
