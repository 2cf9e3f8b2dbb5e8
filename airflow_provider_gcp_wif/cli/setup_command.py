"""``gcp-wif setup``: print the ``gcloud`` commands (or Terraform) that create the pool, the AWS provider restricted
to one role, the service account and its ``roles/iam.workloadIdentityUser`` binding, and optional org policies;
with ``--federation jwt`` the AWS side too and an OIDC provider."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, TextIO

from airflow_provider_gcp_wif.cli.common import (
    AWS_PARTITIONS,
    EXIT_OK,
    EXIT_USAGE,
    FEDERATIONS,
    SUBJECT_LIMIT_BYTES,
    one_line,
)

__all__ = ["AWS_PARTITIONS", "FEDERATIONS"]

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


_AWS_ACCOUNT = re.compile(r"^[0-9]{12}$")
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_ROLE_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-us-gov|aws-cn):iam::(?P<account>[0-9]{12}):role(?P<path>/(?:[^/]+/)*)(?P<name>[^/]+)$"
)
_ORG_ID = re.compile(r"^[0-9]{1,20}$")
_SA_NAME = re.compile(r"^[a-z]([-a-z0-9]{4,28}[a-z0-9])$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_ROLE = re.compile(r"^(roles|projects/[^/]+/roles|organizations/[0-9]+/roles)/[A-Za-z0-9_.]+$")
#: IAM role paths setup writes into CEL string literals and IAM members: the characters paths use in practice.
_ROLE_PATH = re.compile(r"^/(?:[\w+=,.@-]+/)*$")
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


@dataclass(frozen=True)
class SetupArgs:
    """What ``gcp-wif setup`` is asked for, typed: its flags as given (``None``: left out; the seed's environment
    variables in :data:`SETUP_ENV_DEFAULTS` stand in for some of them when the plan is built)."""

    project_id: str
    project_number: str | None = None
    pool_id: str | None = None
    provider_id: str | None = None
    aws_account_id: str | None = None
    aws_role_name: str | None = None
    aws_partition: str | None = None
    service_account: str | None = None
    direct_access: bool = False
    buckets: tuple[str, ...] = ()
    bucket_role: str = "roles/storage.objectAdmin"
    universe_domain: str = "googleapis.com"
    organization_id: str | None = None
    lifetime_over_hour: bool = False
    org_restrictions: bool = False
    federation: str = "sigv4"
    issuer_uri: str | None = None
    format: str = "gcloud"

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace) -> SetupArgs:
        """From the parsed command line (``--bucket`` is repeatable, hence ``buckets``)."""
        given = vars(namespace)
        values = {f.name: given[f.name] for f in dataclasses.fields(cls) if f.name in given}
        values["buckets"] = tuple(given.get("bucket") or ())
        values["federation"] = given.get("federation") or "sigv4"
        return cls(**values)


def _setup_value(args: SetupArgs, name: str) -> Any:
    value = getattr(args, name)
    if value is None and name in SETUP_ENV_DEFAULTS:
        value = os.environ.get(SETUP_ENV_DEFAULTS[name]) or None
    return value


def build_setup_plan(args: SetupArgs | argparse.Namespace) -> SetupPlan:
    """Validate the inputs (through ``WifSettings`` where it has the field); raises ``WifConfigError`` naming the
    command-line flag. Flags left out fall back to the seed's environment variables (:data:`SETUP_ENV_DEFAULTS`).
    A parsed command line (``argparse.Namespace``) is read as :class:`SetupArgs`."""
    from airflow_provider_gcp_wif.config import WifSettings
    from airflow_provider_gcp_wif.errors import WifConfigError

    if isinstance(args, argparse.Namespace):
        args = SetupArgs.from_namespace(args)
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
    federation = args.federation
    issuer_uri = args.issuer_uri
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
    for bucket in args.buckets:
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
        buckets=tuple(b.removeprefix("gs://").rstrip("/") for b in args.buckets), bucket_role=args.bucket_role,
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

    setup = SetupArgs.from_namespace(args)
    try:
        plan = build_setup_plan(setup)
    except WifConfigError as error:
        print(f"gcp-wif setup: {one_line(error)}", file=err)
        return EXIT_USAGE
    out.write(render_terraform(plan) if setup.format == "terraform" else render_gcloud(plan))
    return EXIT_OK
