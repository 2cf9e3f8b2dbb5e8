"""What ``gcp-wif setup`` prints, as a validated plan: the pool, the AWS (or OIDC) provider restricted to one role,
the service account, its bindings and org policies, and the names, conditions and mappings derived from them.
:mod:`~airflow_provider_gcp_wif.cli.setup_args` builds it from the flags,
:mod:`~airflow_provider_gcp_wif.cli.setup_writers` writes it as a shell script or Terraform."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_gcp_wif.cli.common import SUBJECT_LIMIT_BYTES
from airflow_provider_gcp_wif.constants import (
    DEFAULT_UNIVERSE_DOMAIN,
    JWT_DURATION_SECONDS,
    JWT_SIGNING_ALGORITHM,
)
from airflow_provider_gcp_wif.fields import BY_KEY
from airflow_provider_gcp_wif.resource_names import AWS_ROLE_MAPPING

# Google's default attribute mapping for AWS providers (AWS_ROLE_MAPPING, from resource_names), written out so that
# conditions and bindings can rely on it.
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
#: The namespace of the AWS-specific claims of a GetWebIdentityToken JWT.
AWS_CLAIMS = "https://sts.amazonaws.com/"
#: What the role's IAM policy lets it ask GetWebIdentityToken for: the provider's own audience only, RS256 (which
#: Google's OIDC providers verify, :data:`JWT_SIGNING_ALGORITHM`), and at most this many seconds
#: (GetWebIdentityToken's own default); the policy's name is :data:`JWT_POLICY_NAME` (both from ``constants``).
JWT_MAX_DURATION_SECONDS = JWT_DURATION_SECONDS
#: The longest role session name AWS allows: a session ARN is at most this much longer than the role's.
MAX_SESSION_NAME = 64


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
    universe_domain: str = DEFAULT_UNIVERSE_DOMAIN
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
        from airflow_provider_gcp_wif.resource_names import assumed_role_arn

        return assumed_role_arn(self.aws_account_id, self.aws_role_name, self.aws_partition)

    @property
    def jwt(self) -> bool:
        return self.federation == "jwt"

    @property
    def iam_role_arn(self) -> str:
        """The role's IAM ARN, with its path: the ``sub`` of the JWTs GetWebIdentityToken gives its sessions."""
        from airflow_provider_gcp_wif.resource_names import iam_role_arn

        return iam_role_arn(self.aws_account_id, self.aws_role_name, self.aws_partition, self.role_path)

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
        from airflow_provider_gcp_wif.resource_names import principal_member, role_member

        if self.jwt:
            return role_member(self.project_number, self.pool_id, self.aws_role, self.universe_domain)
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
        from airflow_provider_gcp_wif.resource_names import SHORT_SUBJECT_MAPPING

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
        from airflow_provider_gcp_wif.resource_names import AWS_CLAIMS as CLAIMS
        from airflow_provider_gcp_wif.resource_names import jwt_short_subject_mapping

        account = f"{CLAIMS}.aws_account"
        subject = jwt_short_subject_mapping(self.role_path) if self.long_sessions else "assertion.sub"
        return {"google.subject": subject, "attribute.aws_account": account, "attribute.aws_role": "assertion.sub"}

    @property
    def audience(self) -> str:
        from airflow_provider_gcp_wif.resource_names import provider_name

        return provider_name(self.project_number, self.pool_id, self.provider_id, self.universe_domain)

    @property
    def jwt_audience(self) -> str:
        """The ``aud`` the role asks GetWebIdentityToken for and the OIDC provider allows: the provider's
        resource name as an https URL (what Google accepts when a provider lists no audiences)."""
        from airflow_provider_gcp_wif.resource_names import https_audience

        return https_audience(self.audience)

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
        """The ``gcp_wif`` connection's extras for this plan: fields at their default are left out, except
        ``aws_conn_id``, written to show where the AWS identity comes from."""
        extra = {"aws_conn_id": BY_KEY["aws_conn_id"].default, "project_number": self.project_number,
                 "pool_id": self.pool_id, "provider_id": self.provider_id}
        if self.service_account:
            extra["impersonation_chain"] = self.service_account
        extra["project"] = self.project_id
        if self.federation != BY_KEY["federation"].default:
            extra["federation"] = self.federation
        if self.universe_domain != BY_KEY["universe_domain"].default:
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

