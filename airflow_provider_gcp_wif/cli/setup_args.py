"""``gcp-wif setup``'s flags and their grammar: :class:`SetupArgs` (the flags as given, the seed's environment
variables standing in for some), the characters no value may hold, and :func:`build_setup_plan`, which checks every
value (through ``WifSettings`` where it has the field) and returns the
:class:`~airflow_provider_gcp_wif.cli.setup_plan.SetupPlan`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any

from airflow_provider_gcp_wif.cli.common import (
    FEDERATIONS,
    SUBJECT_LIMIT_BYTES,
)
from airflow_provider_gcp_wif.cli.setup_plan import SetupPlan
from airflow_provider_gcp_wif.constants import (
    AWS_ACCOUNT_ID_ENV,
    AWS_ROLE_NAME_ENV,
    DEFAULT_UNIVERSE_DOMAIN,
)
from airflow_provider_gcp_wif.fields import SETUP_FLAGS, seed_variable
from airflow_provider_gcp_wif.resource_names import (
    AWS_ACCOUNT,
    AWS_PARTITIONS,
    IAM_PATH,
    IAM_PATH_MAX,
    ROLE_ARN,
    ROLE_NAME,
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
    if arn and arn.group("partition") not in AWS_PARTITIONS:
        raise WifConfigError("--aws-role-name", f"{role!r} is in the AWS partition {arn.group('partition')!r}, "
                             "which gcp-wif setup does not write for.",
                             f"give a role ARN of the partition {', '.join(AWS_PARTITIONS)}, or just the role's name.")
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
        raise WifConfigError(SETUP_FLAGS.get(err.field, err.field), err.problem, err.fix) from None
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
    from airflow_provider_gcp_wif.testing.bind import is_loopback

    try:
        scheme, host, port, path = parse_endpoint(value)
    except BadEndpoint:
        scheme, host, port, path = "", "", None, ""
    if scheme not in ("https", "http") or (scheme == "http" and not is_loopback(host)):
        raise WifConfigError("--issuer-uri", f"{value!r} is not an https issuer URL.",
                             "give the IssuerIdentifier `aws iam get-outbound-web-identity-federation-info` prints "
                             "(https://<id>.tokens.sts.global.api.aws).")
    return f"{scheme}://{host}{f':{port}' if port else ''}{path}"
