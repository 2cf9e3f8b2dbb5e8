"""The names of Google and AWS resources the provider writes: pools, principals, ARNs, attribute mappings.

One place, shared by the settings, ``gcp-wif setup`` and the fix texts of :mod:`airflow_provider_gcp_wif.diagnosis`,
so that what setup creates, what the connection names and what a fix tells one to bind are the same strings. Every
name takes the Google universe and keeps the AWS partition of the ARN it was given.
"""

from __future__ import annotations

import json
import re

from airflow_provider_gcp_wif.constants import (
    DEFAULT_UNIVERSE_DOMAIN,
    JWT_DURATION_SECONDS,
    JWT_SIGNING_ALGORITHM,
    PROJECT_NUMBER_PATTERN,
)

# The grammars below are matched with ``fullmatch`` (``$`` also matches before a trailing newline) and are ASCII only
# (``\d`` would take any Unicode digit).

#: The AWS partitions ``gcp-wif setup`` writes for (``--aws-partition``): the ones whose STS hosts
#: :func:`sts_host` knows.
AWS_PARTITIONS = ("aws", "aws-us-gov", "aws-cn")
#: Any AWS partition's name (``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso``, ``aws-iso-b``, ``aws-eusc``, ...): the
#: ARNs the provider *reads* (a caller's ARN, the secrets backend's ``aws_role_arn``) may be of any of them.
_PARTITION = r"aws(?:-[a-z]+)*"
#: An AWS account id: 12 digits.
AWS_ACCOUNT = re.compile(r"[0-9]{12}")
#: IAM role names: 1-64 of letters, digits and +=,.@_- (AWS IAM API reference, CreateRole).
ROLE_NAME = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")
#: IAM paths: ``/`` or ``/``-separated segments of printable ASCII, at most :data:`IAM_PATH_MAX` characters
#: (CreateRole's Path).
IAM_PATH = re.compile(r"/(?:[!-.0-~]+/)*")
IAM_PATH_MAX = 512
#: An IAM role's ARN, ``arn:<partition>:iam::<account>:role<path><name>``, in its shape: the path and the name are
#: any printable ASCII (the name without ``/``), so that a caller can say which part is wrong;
#: :func:`is_role_arn` also holds them to :data:`IAM_PATH` and :data:`ROLE_NAME`.
ROLE_ARN = re.compile(
    rf"arn:(?P<partition>{_PARTITION}):iam::(?P<account>[0-9]{{12}}):role(?P<path>/(?:[!-.0-~]+/)*)"
    r"(?P<name>[!-.0-~]+)"
)
#: A project number: the digits of a Google Cloud project's number (not its id).
PROJECT_NUMBER = re.compile(PROJECT_NUMBER_PATTERN)
_ASSUMED_ROLE = re.compile(rf"arn:({_PARTITION}):sts::([0-9]{{12}}):assumed-role/([^/]+)/.+")
_CALLER_ACCOUNT = re.compile(rf"arn:(?:{_PARTITION}):(?:sts|iam)::([0-9]{{12}}):")


def is_role_arn(text: str) -> bool:
    """Whether ``text`` is an IAM role's ARN: :data:`ROLE_ARN` with a valid role name and IAM path."""
    match = ROLE_ARN.fullmatch(text)
    return bool(match and ROLE_NAME.fullmatch(match["name"]) and len(match["path"]) <= IAM_PATH_MAX)


def sts_host(region: str) -> str:
    """AWS STS's regional host: ``sts.<region>.amazonaws.com`` (the aws and aws-us-gov partitions) or
    ``sts.<region>.amazonaws.com.cn`` (aws-cn: cn-north-1, cn-northwest-1)."""
    return f"sts.{region}.amazonaws.com.cn" if region.startswith("cn-") else f"sts.{region}.amazonaws.com"


def role_arn_of(caller_arn: str) -> str | None:
    """``arn:aws:sts::A:assumed-role/R/session`` → ``arn:aws:sts::A:assumed-role/R`` (what ``attribute.aws_role``
    holds under Google's default AWS attribute mapping); ``None`` for other ARNs."""
    match = _ASSUMED_ROLE.fullmatch(caller_arn)
    if not match:
        return None
    partition, account, role = match.groups()
    return assumed_role_arn(account, role, partition)


def account_of(caller_arn: str) -> str | None:
    """The 12-digit account of an STS or IAM ARN, or ``None``."""
    match = _CALLER_ACCOUNT.match(caller_arn)
    return match.group(1) if match else None


#: Google's default attribute mapping of AWS providers for ``attribute.aws_role``: the assumed-role ARN without its
#: session name (the ARN itself for IAM users), in every AWS partition.
AWS_ROLE_MAPPING = (
    "assertion.arn.contains('assumed-role') ? assertion.arn.extract('{account_arn}assumed-role/') + "
    "'assumed-role/' + assertion.arn.extract('assumed-role/{role_name}/') : assertion.arn"
)
#: A ``google.subject`` of at most 77 bytes (account + role name) for assumed roles, the ARN for IAM users.
SHORT_SUBJECT_MAPPING = (
    "assertion.arn.contains('assumed-role') ? assertion.account + ':' + "
    "assertion.arn.extract('assumed-role/{role_name}/') : assertion.arn"
)


def pool_name(project_number: str, pool_id: str, universe_domain: str = DEFAULT_UNIVERSE_DOMAIN) -> str:
    """``//iam.<universe>/projects/N/locations/global/workloadIdentityPools/P``."""
    return f"//iam.{universe_domain}/projects/{project_number}/locations/global/workloadIdentityPools/{pool_id}"


#: A provider's full name (the audience), in any universe; the groups name its parts.
AUDIENCE = re.compile(
    r"^//iam\.(?P<domain>[a-z0-9.-]+)/projects/(?P<number>[^/]+)/locations/global/"
    r"workloadIdentityPools/(?P<pool>[^/]+)/providers/(?P<provider>[^/]+)$"
)


def provider_name(project_number: str, pool_id: str, provider_id: str, universe_domain: str = DEFAULT_UNIVERSE_DOMAIN
                  ) -> str:
    """The audience: ``//iam.<universe>/projects/N/locations/global/workloadIdentityPools/P/providers/X``."""
    return f"{pool_name(project_number, pool_id, universe_domain)}/providers/{provider_id}"


def https_audience(audience: str) -> str:
    """``audience`` in the ``https://iam.<universe>/...`` form that Google's OIDC providers accept by default (when
    their allowed audiences are empty): the ``aud`` of the AWS JWT on the jwt route."""
    return "https:" + audience if audience.startswith("//") else audience


def role_member(project_number: str, pool_id: str, aws_role: str, universe_domain: str = DEFAULT_UNIVERSE_DOMAIN
                ) -> str:
    """The ``principalSet`` of every identity whose ``attribute.aws_role`` is ``aws_role`` in the pool."""
    return f"principalSet:{pool_name(project_number, pool_id, universe_domain)}/attribute.aws_role/{aws_role}"


def principal_member(project_number: str, pool_id: str, caller_arn: str, universe_domain: str = DEFAULT_UNIVERSE_DOMAIN
                     ) -> str:
    """The IAM member that stands for ``caller_arn`` in the pool: a ``principalSet`` on ``attribute.aws_role`` for
    an assumed role (every session of the role), else the single ``principal`` whose subject is the ARN."""
    role = role_arn_of(caller_arn)
    if role:
        return role_member(project_number, pool_id, role, universe_domain)
    return f"principal:{pool_name(project_number, pool_id, universe_domain)}/subject/{caller_arn}"


def iam_role_arn(account: str, role_name: str, partition: str = "aws", path: str = "/") -> str:
    """``arn:<partition>:iam::<account>:role<path><name>``: the role's own ARN (the jwt route's ``sub``)."""
    return f"arn:{partition}:iam::{account}:role{path}{role_name}"


def assumed_role_arn(account: str, role_name: str, partition: str = "aws") -> str:
    """``arn:<partition>:sts::<account>:assumed-role/<name>``: what ``attribute.aws_role`` holds for every session
    of the role under Google's default AWS mapping (:data:`AWS_ROLE_MAPPING`)."""
    return f"arn:{partition}:sts::{account}:assumed-role/{role_name}"


#: The JWT's claims namespace that AWS fills in (``aws_account``, ``source_region``, ``principal_id``, ...).
AWS_CLAIMS = "assertion['https://sts.amazonaws.com/']"


#: ``google.subject`` for the jwt route when ``sub`` (the role's IAM ARN, its path included) is over 127 bytes:
#: the AWS account and the role name, at most 12 + 1 + 64 bytes.
def jwt_short_subject_mapping(role_path: str = "/") -> str:
    return f"{AWS_CLAIMS}.aws_account + ':' + assertion.sub.extract('role{role_path}{{role_name}}')"


#: The IAM policy statement a role needs for the jwt route: GetWebIdentityToken for this audience only.
def jwt_policy_document(audience: str, max_duration: int = JWT_DURATION_SECONDS) -> str:
    """The inline policy (JSON, one line) that lets a role ask for JWTs for ``audience`` (``https://iam...``), at
    most ``max_duration`` seconds long, through the condition keys AWS documents for GetWebIdentityToken."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "sts:GetWebIdentityToken",
            "Resource": "*",
            "Condition": {
                "ForAllValues:StringEquals": {"sts:IdentityTokenAudience": audience},
                "StringEquals": {"sts:SigningAlgorithm": JWT_SIGNING_ALGORITHM},
                "NumericLessThanEquals": {"sts:DurationSeconds": str(max_duration)},
            },
        }],
    }, separators=(",", ":"))



def role_name_of(caller_arn: str | None) -> str | None:
    """The role's name in an assumed-role ARN or a role's IAM ARN (its path left out); ``None`` for others."""
    match = _ASSUMED_ROLE.fullmatch(caller_arn or "")
    if match:
        return match.group(3)
    role = ROLE_ARN.fullmatch(caller_arn or "")
    return role["name"] if role else None

