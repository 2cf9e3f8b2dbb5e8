"""``gcp-wif setup``: print the ``gcloud`` commands (or Terraform) that create the pool, the AWS provider restricted
to one role, the service account and its ``roles/iam.workloadIdentityUser`` binding, and optional org policies;
with ``--federation jwt`` the AWS side too and an OIDC provider."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.resources
import json
import os
import re
import shlex
import string
from dataclasses import dataclass, field
from typing import Any, TextIO

from airflow_provider_gcp_wif.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    FEDERATIONS,
    SUBJECT_LIMIT_BYTES,
    one_line,
)
from airflow_provider_gcp_wif.constants import (
    AWS_ACCOUNT_ID_ENV,
    AWS_ROLE_NAME_ENV,
    CONN_TYPE,
    DEFAULT_UNIVERSE_DOMAIN,
    JWT_DURATION_SECONDS,
    JWT_POLICY_NAME,
    JWT_SIGNING_ALGORITHM,
)
from airflow_provider_gcp_wif.fields import BY_KEY, SETUP_FLAGS, seed_variable
from airflow_provider_gcp_wif.resource_names import (
    AWS_ACCOUNT,
    AWS_PARTITIONS,
    AWS_ROLE_MAPPING,
    IAM_PATH,
    IAM_PATH_MAX,
    ROLE_ARN,
    ROLE_NAME,
)

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


# The grammars setup accepts, each used with ``fullmatch`` (a ``$`` also matches before a trailing newline) and
# ASCII only (``\w`` would take any Unicode letter). They are what Google and AWS accept, or narrower.
# The AWS account, role name, IAM path and role ARN grammars are resource_names' (AWS_ACCOUNT, ROLE_NAME, IAM_PATH,
# ROLE_ARN).
_ORG_ID = re.compile(r"[1-9][0-9]{0,19}")
#: A plain Google Cloud project id (6-30 lowercase letters, digits, hyphens; a letter first, no hyphen last).
_PROJECT = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
#: Service accounts setup creates: user-managed ones, ``NAME@PROJECT_ID.iam.gserviceaccount.com``.
_SA_NAME = re.compile(_PROJECT)
_SA_EMAIL = re.compile(rf"(?P<name>{_PROJECT})@(?P<project>{_PROJECT})\.iam\.gserviceaccount\.com")
#: Cloud Storage bucket names: 3-63 characters, or up to 222 in dot-separated parts of at most 63.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
#: A predefined role, or a custom one of a project or an organization (IAM's ``roles/ID`` grammar).
_ROLE = re.compile(rf"roles/[A-Za-z0-9_.]{{1,128}}|projects/(?:[a-z0-9.-]+:)?{_PROJECT}/roles/[A-Za-z0-9_.]{{3,64}}"
                   r"|organizations/[1-9][0-9]{0,19}/roles/[A-Za-z0-9_.]{3,64}")
#: IAM role paths setup writes into CEL string literals and IAM members: the characters paths use in practice.
_ROLE_PATH = re.compile(r"/(?:[A-Za-z0-9+=,.@_-]+/)*")
#: What no value of setup's contains, refused before any value is parsed (besides whitespace, control and non-ASCII
#: characters): the shell's metacharacters, quotes and expansions. (Braces, which start Terraform templates and
#: brace expansions, only after ``$``/``%`` or unquoted: no grammar below admits them, except IAM paths, which the
#: jwt route holds to letters, digits and +=,.@_- and the sigv4 route never prints.)
_REFUSED_CHARACTERS = frozenset("\"'`$\\;&|<>()")
#: The namespace of the AWS-specific claims of a GetWebIdentityToken JWT.
AWS_CLAIMS = "https://sts.amazonaws.com/"
#: What the role's IAM policy lets it ask GetWebIdentityToken for: the provider's own audience only, RS256 (which
#: Google's OIDC providers verify, :data:`JWT_SIGNING_ALGORITHM`), and at most this many seconds
#: (GetWebIdentityToken's own default); the policy's name is :data:`JWT_POLICY_NAME` (both from ``constants``).
JWT_MAX_DURATION_SECONDS = JWT_DURATION_SECONDS
#: The longest role session name AWS allows: a session ARN is at most this much longer than the role's.
MAX_SESSION_NAME = 64

#: The flag that gave each connection field setup validates through ``WifSettings`` (errors name the flag).
_SETUP_FLAGS = SETUP_FLAGS
#: The seed's environment variables, as defaults for `gcp-wif setup`'s flags.
SETUP_ENV_DEFAULTS = {
    "project_number": seed_variable("project_number"),
    "pool_id": seed_variable("pool_id"),
    "provider_id": seed_variable("provider_id"),
    "service_account": seed_variable("impersonation_chain"),
    "aws_account_id": AWS_ACCOUNT_ID_ENV,
    "aws_role_name": AWS_ROLE_NAME_ENV,
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
    universe_domain: str = DEFAULT_UNIVERSE_DOMAIN
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


def setup_flag(name: str) -> str:
    """The command-line flag of a :class:`SetupArgs` field."""
    return "--bucket" if name == "buckets" else "--" + name.replace("_", "-")


#: What each text flag names, for the one-line refusal.
_WHAT = {"project_id": "a Google Cloud project id", "project_number": "a project number", "pool_id": "a pool id",
         "provider_id": "a provider id", "aws_account_id": "a 12-digit AWS account id",
         "aws_role_name": "an IAM role name", "service_account": "a service-account email",
         "buckets": "a Cloud Storage bucket name", "bucket_role": "an IAM role", "universe_domain": "a domain name",
         "organization_id": "an organization id", "issuer_uri": "an https issuer URL"}


def _refuse_code(args: SetupArgs) -> None:
    """Refuse, before any value is parsed, a value with a character no Google or AWS name has and a shell,
    Terraform or YAML would read as code (what setup prints is pasted into a shell or applied): whitespace,
    control and non-ASCII characters, quotes, ``$``, ``;``, ``|``, braces... (:data:`_REFUSED_CHARACTERS`). The seed's
    environment variables that stand in for flags are held to the same rule."""
    from airflow_provider_gcp_wif.errors import WifConfigError
    from airflow_provider_gcp_wif.excerpts import shown

    given: list[tuple[str, str, str]] = []
    for spec in dataclasses.fields(SetupArgs):
        value = getattr(args, spec.name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str):
                given.append((spec.name, item, ""))
        if value is None and spec.name in SETUP_ENV_DEFAULTS and os.environ.get(SETUP_ENV_DEFAULTS[spec.name]):
            given.append((spec.name, os.environ[SETUP_ENV_DEFAULTS[spec.name]],
                          f" (from ${SETUP_ENV_DEFAULTS[spec.name]})"))
    for name, value, source in given:
        bad = next((ch for ch in value if ch in _REFUSED_CHARACTERS or not ch.isascii() or not ch.isprintable()
                    or ch.isspace()), None)
        if bad is not None:
            what = _WHAT.get(name, "a value setup accepts")
            raise WifConfigError(setup_flag(name), f"{shown(value)}{source} is not {what}: "
                                 f"it contains {bad!r}, which no such name has and a shell or Terraform would "
                                 "read as code.", "give the value as Google or AWS print it, without quotes, spaces "
                                 "or control characters.")


def build_setup_plan(args: SetupArgs | argparse.Namespace) -> SetupPlan:
    """Validate the inputs (through ``WifSettings`` where it has the field); raises ``WifConfigError`` naming the
    command-line flag. Flags left out fall back to the seed's environment variables (:data:`SETUP_ENV_DEFAULTS`).
    A parsed command line (``argparse.Namespace``) is read as :class:`SetupArgs`.

    Every value is checked against the grammar Google or AWS accept (whole-string matches, ASCII), after
    :func:`_refuse_code` has refused the characters that would make what setup prints run code; the plan holds
    the normalised values, which are what setup prints."""
    from airflow_provider_gcp_wif.config import WifSettings
    from airflow_provider_gcp_wif.errors import WifConfigError

    if isinstance(args, argparse.Namespace):
        args = SetupArgs.from_namespace(args)
    _refuse_code(args)
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
    if partition is not None and partition not in AWS_PARTITIONS:
        raise WifConfigError("--aws-partition", f"{partition!r} is not an AWS partition.",
                             f"give one of {', '.join(AWS_PARTITIONS)}.")
    arn = ROLE_ARN.fullmatch(role)
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
    if not account or not AWS_ACCOUNT.fullmatch(account):
        raise WifConfigError("--aws-account-id", f"{account!r} is not a 12-digit AWS account id.",
                             "find it with `aws sts get-caller-identity --query Account`.")
    if not ROLE_NAME.fullmatch(role):
        raise WifConfigError("--aws-role-name", f"{role!r} is not an IAM role name.",
                             "give the role's name (e.g. the MWAA execution role's), or its ARN.")
    if not IAM_PATH.fullmatch(role_path) or len(role_path) > IAM_PATH_MAX:
        raise WifConfigError("--aws-role-name", f"the IAM path {role_path!r} is not an IAM path.",
                             "give the role's ARN as `aws iam get-role --role-name NAME --query Role.Arn` prints it.")
    federation = args.federation
    if federation not in FEDERATIONS:
        raise WifConfigError("--federation", f"{federation!r} is not a federation route.",
                             f"give one of {', '.join(FEDERATIONS)}.")
    issuer_uri = args.issuer_uri
    if federation == "jwt":
        if not _ROLE_PATH.fullmatch(role_path):
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
        if "," in service_account:
            raise WifConfigError("--service-account", "takes one service account.", "give a single email.")
        if "@" not in service_account and _SA_NAME.fullmatch(service_account):
            service_account = f"{service_account}@{args.project_id}.iam.gserviceaccount.com"
    elif args.service_account:
        raise WifConfigError("--direct-access", "and --service-account exclude each other.",
                             "direct resource access grants roles to the AWS role itself; drop one of them.")
    elif args.lifetime_over_hour:
        raise WifConfigError("--lifetime-over-hour", "applies to service-account tokens only.",
                             "drop it: federated tokens for direct access live as long as Google STS says.")
    if args.organization_id and not _ORG_ID.fullmatch(args.organization_id):
        raise WifConfigError("--organization-id", f"{args.organization_id!r} is not an organization id.",
                             "find it with `gcloud organizations list`.")
    buckets = []
    for bucket in args.buckets:
        name = bucket.removeprefix("gs://").rstrip("/")
        if not _BUCKET.fullmatch(name) or any(len(part) > 63 for part in name.split(".")):
            raise WifConfigError("--bucket", f"{bucket!r} is not a Cloud Storage bucket name.",
                                 "give the bucket's name, e.g. my-data-bucket.")
        buckets.append(name)
    if not _ROLE.fullmatch(args.bucket_role):
        raise WifConfigError("--bucket-role", f"{args.bucket_role!r} is not an IAM role.",
                             "e.g. roles/storage.objectAdmin or roles/storage.objectViewer, or a custom role "
                             "projects/PROJECT_ID/roles/ID or organizations/ORG_ID/roles/ID.")
    extras = {"project_number": project_number, "pool_id": pool_id, "provider_id": provider_id,
              "project": args.project_id, "universe_domain": args.universe_domain}
    if service_account:
        extras["impersonation_chain"] = service_account
    try:
        # setup only prints: the universe the user names is the one to validate the names against.
        settings = WifSettings.from_extras(extras, allowed_endpoint_hosts=args.universe_domain or "")
    except WifConfigError as err:
        raise WifConfigError(_SETUP_FLAGS.get(err.field, err.field), err.problem, err.fix) from None
    assert settings.project is not None
    if service_account and not _SA_EMAIL.fullmatch(service_account):
        raise WifConfigError("--service-account", f"{service_account!r} is not a service account setup can "
                             "create.", "give NAME@PROJECT_ID.iam.gserviceaccount.com or NAME (6-30 lowercase "
                             "letters, digits and hyphens, a letter first).")
    # WifSettings' normalised values (a universe domain in lowercase, without a trailing dot) are the ones printed.
    plan = SetupPlan(
        project_id=settings.project, project_number=settings.project_number, pool_id=settings.pool_id,
        provider_id=settings.provider_id, aws_account_id=account, aws_role_name=role,
        service_account=settings.impersonation_chain[-1] if service_account else None,
        organization_id=args.organization_id, lifetime_over_hour=args.lifetime_over_hour,
        org_restrictions=args.org_restrictions, aws_partition=partition, universe_domain=settings.universe_domain,
        buckets=tuple(buckets), bucket_role=args.bucket_role,
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
    """An https URL in the endpoint grammar (Google fetches the issuer's discovery document and keys); http only on
    loopback, for the emulated AWS issuer. Returns it normalised: scheme and host in lowercase, no default port, no
    trailing slash."""
    from airflow_provider_gcp_wif.endpoints import BadEndpoint, parse_endpoint
    from airflow_provider_gcp_wif.errors import WifConfigError

    try:
        scheme, host, port, path = parse_endpoint(value)
    except BadEndpoint:
        scheme, host, port, path = "", "", None, ""
    if scheme not in ("https", "http") or (scheme == "http" and host not in ("127.0.0.1", "localhost", "[::1]")):
        raise WifConfigError("--issuer-uri", f"{value!r} is not an https issuer URL.",
                             "give the IssuerIdentifier `aws iam get-outbound-web-identity-federation-info` prints "
                             "(https://<id>.tokens.sts.global.api.aws).")
    return f"{scheme}://{host}{f':{port}' if port else ''}{path}"


@functools.cache
def _sections(name: str) -> dict[str, string.Template]:
    """The sections of a template file shipped in ``cli/templates/``: each ``#@ NAME`` line starts one, ``#@ end``
    ends the last; other ``#@`` lines are comments."""
    text = importlib.resources.files(__package__).joinpath("templates").joinpath(name).read_text(encoding="utf-8")
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if line.startswith("#@ "):
            marker = line[3:]
            if marker.isidentifier():
                current = None if marker == "end" else sections.setdefault(marker, [])
            continue
        if current is not None:
            current.append(line)
    return {key: string.Template("\n".join(lines)) for key, lines in sections.items()}


def _fill(template_file: str, section: str, **values: Any) -> str:
    return _sections(template_file)[section].substitute(values)


class _Text(str):
    """Text setup composed itself, for the place it goes: constants, and values already quoted or escaped by the
    writer of that language (:func:`shell_word`, :func:`hcl_string`, :func:`_yaml_scalar`). Filled in as is."""


def _single_line(value: str) -> str:
    """``value``, which must not end a comment, a heredoc line or a command: no line break or other control
    character (the values were refused before they got here; this is the writers' own guard)."""
    if not value.isprintable():
        raise ValueError(f"setup would print a control character: {value[:80]!r}")
    return value


def shell_word(value: str) -> str:
    """``value`` as exactly one word of a POSIX shell (bash, zsh, sh), as :func:`shlex.quote` writes it: bare when
    it has only characters no shell reads, else in single quotes."""
    return shlex.quote(_single_line(str(value)))


def _shell_dq(value: str) -> _Text:
    """One shell word in double quotes (how a reader expects CEL, member and URL arguments), or
    :func:`shell_word`'s single quotes if it has a character double quotes leave to the shell (``$``, a backtick,
    a backslash, ``"``, ``!``)."""
    value = _single_line(value)
    if value and not any(ch in '$`\\"!' for ch in value):
        return _Text(f'"{value}"')
    return _Text(shell_word(value))


def _shell_words(values: Any) -> _Text:
    return _Text(" ".join(shell_word(v) for v in values))


def _comment(text: str) -> _Text:
    """Text for the rest of a ``#`` comment line (shell or Terraform): one line, whatever it says."""
    return _Text(_single_line(text))


def _heredoc(text: str, end: str = "EOF") -> _Text:
    """The body of a quoted heredoc (``<<'EOF'``: nothing in it is expanded), which no line of may end early."""
    if any(line == end for line in text.split("\n")):
        raise ValueError(f"a line of the heredoc would end it: {end!r}")
    return _Text(text)


def _sh(section: str, **values: Any) -> list[str]:
    """Lines of the gcloud script. Every value is one shell word (:func:`shell_word`) unless it is :class:`_Text`
    that was written for its place."""
    words = {key: value if isinstance(value, _Text) else shell_word(str(value)) for key, value in values.items()}
    return _fill("setup.sh.tmpl", section, **words).split("\n")


def _tf_text(section: str, **values: Any) -> _Text:
    """A piece of the Terraform: :class:`_Text` values are HCL written for their place (:func:`hcl_string`, blocks
    made of those); any other value is the text of a ``#`` comment and must be one line."""
    pieces = {key: value if isinstance(value, _Text) else _comment(str(value)) for key, value in values.items()}
    return _Text(_fill("setup.tf.tmpl", section, **pieces))


def _tf(section: str, **values: Any) -> str:
    """A Terraform block (ends with a newline)."""
    return _tf_text(section, **values) + "\n"


def render_gcloud(plan: SetupPlan) -> str:
    p = plan
    mapping = ",".join(f"{key}={value}" for key, value in p.attribute_mapping.items())
    pool_flags = _Text(f"--project={shell_word(p.project_id)} --location=global")
    who = "the AWS role itself (direct resource access)" if p.direct_access else f"service account {p.service_account}"
    lines = _sh("header", role=p.iam_role_arn if p.jwt else p.role_arn, project_id=p.project_id,
                project_number=p.project_number, who=_comment(who),
                route=_comment(" through AWS outbound identity federation (JWT)" if p.jwt else ""))
    if p.jwt:
        lines += _aws_cli_jwt_side(p)
    lines += _sh("services", services=_shell_words(SERVICES), project_id=p.project_id)
    lines += _gcloud_org_policies(p)
    lines += _sh("pool", pool_id=p.pool_id, pool_flags=pool_flags)
    provider = {"aws_account_id": p.aws_account_id, "aws_role_name": p.aws_role_name, "provider_id": p.provider_id,
                "pool_flags": pool_flags, "pool_id": p.pool_id, "mapping": _shell_dq(mapping),
                "condition": _shell_dq(p.condition)}
    if p.jwt:
        lines += _sh("provider_oidc", jwt_audience=_shell_dq(p.jwt_audience), **provider)
    else:
        lines += _sh("provider_aws", **provider)
    if p.service_account:
        sa_name, sa_project = p.service_account.split("@", 1)[0], p.service_account.split("@", 1)[1].split(".")[0]
        lines += _sh("service_account", sa_name=sa_name, sa_project=sa_project, service_account=p.service_account,
                     member=_shell_dq(p.member))
    lines += _sh("grants_service_account" if p.service_account else "grants_direct",
                 colon=_Text(":" if p.buckets else ", for example:"))
    for bucket in p.buckets:
        lines += _sh("bucket", bucket=f"gs://{bucket}", grantee=_shell_dq(p.grantee), bucket_role=p.bucket_role)
    if not p.buckets:
        lines += _sh("bucket_example", grantee=_shell_dq(p.grantee))
    if p.direct_access:
        lines += _sh("direct_access_note")
    lines += _sh("connection", connection=_connection_json(p))
    for note in p.notes:
        lines += _sh("note", note=_comment(note))
    return "\n".join(lines) + "\n"


def _aws_cli_jwt_side(p: SetupPlan) -> list[str]:
    """AWS CLI steps of ``--federation jwt``: the feature, the issuer URL (into ``$ISSUER_URI``), the role's
    policy."""
    issuer = (_shell_dq(p.issuer_uri) if p.issuer_uri
              else _Text(f'"{_fill("setup.sh.tmpl", "issuer_from_aws_cli")}"'))
    return _sh("aws_jwt_side", aws_account_id=p.aws_account_id, aws_role_name=p.aws_role_name, issuer=issuer,
               algorithm=JWT_SIGNING_ALGORITHM, max_duration=JWT_MAX_DURATION_SECONDS, policy_name=JWT_POLICY_NAME,
               policy_json=_heredoc(json.dumps(p.web_identity_token_policy(), indent=2)))


def _gcloud_org_policies(p: SetupPlan) -> list[str]:
    lines: list[str] = []
    for file_name, constraint, values in p.org_policies():
        common = {"constraint": constraint, "why": _comment(_POLICY_WHY[constraint]), "values": _shell_words(values)}
        if p.organization_id:
            lines += _sh("org_policy_organization", organization_id=p.organization_id, **common)
        else:
            lines += _sh("org_policy_project", project_id=p.project_id, file_name=file_name,
                         policy_yaml=_heredoc("\n".join(_policy_yaml(p.policy_parent, constraint, values))),
                         **common)
    return lines


_POLICY_WHY = {
    "iam.allowServiceAccountCredentialLifetimeExtension": "lets the service account mint tokens for up to 12 h; "
    "needed for lifetime_seconds over 3600",
    "iam.workloadIdentityPoolProviders": "pools may only trust AWS as an external identity provider",
    "iam.workloadIdentityPoolAwsAccounts": "AWS providers may only trust these AWS accounts",
}


def _yaml_scalar(value: str) -> str:
    """``value`` as a YAML double-quoted scalar: YAML 1.2 is a superset of JSON, and a JSON string (ASCII, its
    escapes a subset of YAML's) is read back as the same string, whatever it holds."""
    return json.dumps(value)


def _policy_yaml(parent: str, constraint: str, values: list[str]) -> list[str]:
    """An org policy as YAML: the template's keys, every value a :func:`_yaml_scalar`."""
    policy = _fill("org-policy.yaml.tmpl", "policy", name=_yaml_scalar(f"{parent}/policies/{constraint}"))
    return [*policy.split("\n"), *[_fill("org-policy.yaml.tmpl", "value", value=_yaml_scalar(value))
                                   for value in values]]


def _connection_json(plan: SetupPlan) -> str:
    return json.dumps({"conn_type": CONN_TYPE, "extra": plan.connection_extra()})


def hcl_string(value: str) -> _Text:
    """``value`` as a Terraform (HCL) quoted string literal that Terraform reads back as exactly ``value``: JSON's
    string syntax is HCL's, except that ``${`` and ``%{`` start a template there (``$${`` and ``%%{`` are their
    escapes) and that HCL has no ``\b`` and ``\f`` (``\u0008``, ``\u000c``). Non-ASCII text is written as is:
    JSON's surrogate-pair escapes are not code points in HCL."""
    escaped = re.sub(r"\\(.)", lambda m: _HCL_FOR_JSON_ESCAPE.get(m.group(1), m.group(0)),
                     json.dumps(value, ensure_ascii=False))
    return _Text(escaped.replace("${", "$${").replace("%{", "%%{"))


_HCL_FOR_JSON_ESCAPE = {"b": "\\u0008", "f": "\\u000c"}


_hcl = hcl_string


def _tf_name(text: str) -> _Text:
    """A Terraform resource name (an identifier) made from ``text``."""
    return _Text(re.sub(r"[^a-z0-9_]", "_", text.lower()).strip("_") or "x")


def render_terraform(plan: SetupPlan) -> str:
    p = plan
    mapping_rules = p.attribute_mapping
    width = max(len(key) for key in mapping_rules) + 2
    mapping = _Text("\n".join(_tf_text("mapping_rule", key=_Text(_hcl(key).ljust(width)), value=_hcl(value))
                              for key, value in mapping_rules.items()))
    policies = _terraform_policies(p)
    depends = _Text("")
    if policies:
        depends = _tf_text("depends_on", policies=_Text(", ".join(f"google_org_policy_policy.{name}"
                                                                   for name, _ in policies)))
    blocks = [
        _tf("header", role=p.iam_role_arn if p.jwt else p.role_arn, project_id=p.project_id,
            project_number=p.project_number, route=" through AWS outbound identity federation (JWT)" if p.jwt else ""),
        _tf("services", services=_Text(", ".join(_hcl(s) for s in SERVICES)), project_id=_hcl(p.project_id)),
        *_terraform_aws_jwt_side(p),
        *[block for _, block in policies],
        _tf("pool", project_id=_hcl(p.project_id), pool_id=_hcl(p.pool_id)),
        _tf("provider", project_id=_hcl(p.project_id), provider_id=_hcl(p.provider_id), mapping=mapping,
            condition=_hcl(p.condition), trust=_terraform_trust(p), depends=depends),
    ]
    if p.service_account:
        sa_name = p.service_account.split("@", 1)[0]
        sa_project = p.service_account.split("@", 1)[1].split(".", 1)[0]
        blocks += [_tf("service_account", sa_project=_hcl(sa_project), sa_name=_hcl(sa_name)),
                   _tf("service_account_member", member=_hcl(p.member))]
    for bucket in p.buckets:
        blocks.append(_tf("bucket", resource=_tf_name(bucket), bucket=_hcl(bucket), bucket_role=_hcl(p.bucket_role),
                          grantee=_hcl(p.grantee)))
    blocks.append(_tf("connection", connection=_hcl(_connection_json(p))))
    blocks += [_tf("note", note=note) for note in p.notes]
    return "\n".join(blocks)


AWS_FEDERATION_RESOURCE = "aws_iam_outbound_web_identity_federation.gcp_wif"


def _terraform_trust(p: SetupPlan) -> _Text:
    """The provider's ``aws {}`` block, or (``jwt``) its ``oidc {}`` block."""
    if not p.jwt:
        return _tf_text("trust_aws", aws_account_id=_hcl(p.aws_account_id))
    issuer = _hcl(p.issuer_uri) if p.issuer_uri else _Text(f"{AWS_FEDERATION_RESOURCE}.issuer_identifier")
    return _tf_text("trust_oidc", issuer=issuer, jwt_audience=_hcl(p.jwt_audience))


def _terraform_aws_jwt_side(p: SetupPlan) -> list[str]:
    """``jwt``: the AWS side (hashicorp/aws provider, configured for account ``p.aws_account_id``)."""
    if not p.jwt:
        return []
    blocks = []
    if not p.issuer_uri:
        blocks.append(_tf("aws_federation", aws_account_id=p.aws_account_id))
    statement = p.web_identity_token_policy()["Statement"][0]
    blocks.append(_tf("aws_role_policy", aws_role_name=p.aws_role_name, algorithm=JWT_SIGNING_ALGORITHM,
                      max_duration=JWT_MAX_DURATION_SECONDS, policy_name=_hcl(JWT_POLICY_NAME),
                      role_name=_hcl(p.aws_role_name), sid=_hcl(statement["Sid"]), jwt_audience=_hcl(p.jwt_audience),
                      signing_algorithm=_hcl(JWT_SIGNING_ALGORITHM),
                      duration=_hcl(statement["Condition"]["NumericLessThanEquals"]["sts:DurationSeconds"])))
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
        parent = f"projects/{p.project_id}"
        org_note = _Text("")
        if p.organization_id:
            org_note = _Text(_tf_text("org_policy_organization_note", constraint=shell_word(constraint),
                                      values=_shell_words(values), organization_id=shell_word(p.organization_id))
                             + "\n")
        result.append((resource, _tf("org_policy", why=_POLICY_WHY[constraint], org_note=org_note,
                                     resource=_tf_name(resource), name=_hcl(f"{parent}/policies/{constraint}"),
                                     parent=_hcl(parent), allowed=_Text(", ".join(_hcl(v) for v in values)))))
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
