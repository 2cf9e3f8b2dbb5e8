"""The default fixture: one project, one pool/provider trusting AWS account 123456789012, two service accounts
and one bucket. Plain data, importable without any third-party package."""

from __future__ import annotations

import copy
from typing import Any

PROJECT_ID = "wif-demo-project"
PROJECT_NUMBER = "734501234567"
POOL_ID = "aws-pool"
PROVIDER_ID = "aws-provider"
AWS_JWT_PROVIDER_ID = "aws-jwt-fixture"  # the OIDC provider trusting the emulated AWS issuer (info["jwt_provider_id"])
AWS_ACCOUNT_ID = "123456789012"
SERVICE_ACCOUNT = f"airflow-wif@{PROJECT_ID}.iam.gserviceaccount.com"
TARGET_SERVICE_ACCOUNT = f"airflow-wif-target@{PROJECT_ID}.iam.gserviceaccount.com"
BUCKET = "wif-demo-bucket"
ROLE_ARN = f"arn:aws:iam::{AWS_ACCOUNT_ID}:role/wif-role"
ASSUMED_ROLE = f"arn:aws:sts::{AWS_ACCOUNT_ID}:assumed-role/wif-role"

POOL_RESOURCE = f"projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/{POOL_ID}"
AUDIENCE = f"//iam.googleapis.com/{POOL_RESOURCE}/providers/{PROVIDER_ID}"
ROLE_PRINCIPAL_SET = f"principalSet://iam.googleapis.com/{POOL_RESOURCE}/attribute.aws_role/{ASSUMED_ROLE}"

DEFAULT_CONFIG: dict[str, Any] = {
    "project_id": PROJECT_ID,
    "project_number": PROJECT_NUMBER,
    "pools": {
        POOL_ID: {
            "disabled": False,
            "providers": {
                PROVIDER_ID: {
                    "disabled": False,
                    "aws_account_id": AWS_ACCOUNT_ID,
                    "attribute_condition": None,
                    "google_subject": "assertion.arn",
                    "strict": False,
                },
            },
        },
    },
    "service_accounts": {
        SERVICE_ACCOUNT: {
            "disabled": False,
            "bindings": [{"role": "roles/iam.workloadIdentityUser", "members": [ROLE_PRINCIPAL_SET]}],
        },
        TARGET_SERVICE_ACCOUNT: {
            "disabled": False,
            "bindings": [{"role": "roles/iam.serviceAccountTokenCreator",
                          "members": [f"serviceAccount:{SERVICE_ACCOUNT}"]}],
        },
    },
    "org_policy": {"lifetime_extension": []},
    "token_ttl": {"sts": 3600, "iam": None},
    "project_iam": [{"role": "roles/storage.admin", "members": [f"serviceAccount:{SERVICE_ACCOUNT}"]}],
    "buckets": {
        BUCKET: {"iam": [{"role": "roles/storage.objectAdmin", "members": [f"serviceAccount:{SERVICE_ACCOUNT}"]}]},
    },
    # Secret Manager: {secret_id: {"versions": [text, ...], "iam": [{role, members}]}} (version 1 first).
    "secrets": {},
    "allow_anonymous_storage": True,
    "disabled_services": [],
}


def default_config() -> dict[str, Any]:
    """A fresh deep copy of :data:`DEFAULT_CONFIG`."""
    return copy.deepcopy(DEFAULT_CONFIG)


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``patch``: dicts merge recursively, everything else (lists too) is replaced.
    A ``None`` value is stored as ``None`` (it does not delete the key)."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def aws_jwt_provider(issuer_uri: str, account_id: str = AWS_ACCOUNT_ID, allowed_audiences: list[str] | None = None,
                     attribute_mapping: dict[str, str] | None = None,
                     attribute_condition: str | bool | None = True) -> dict[str, Any]:
    """An OIDC provider trusting an AWS account's outbound identity federation issuer: ``google.subject`` = the
    JWT's ``sub`` (the role ARN), ``attribute.aws_account``, ``attribute.aws_role`` in the sigv4 route's form
    (``arn:aws:sts::<acct>:assumed-role/<role>``, so the fixture's bindings apply unchanged), and a condition
    pinning the account (``True``: that default; ``None``/``False``: none; or a CEL text)."""
    namespace = "assertion['https://sts.amazonaws.com/']"
    mapping = attribute_mapping or {
        "google.subject": "assertion.sub",
        "attribute.aws_account": f"{namespace}.aws_account",
        "attribute.aws_role": (f"assertion.sub.contains(':role/') ? 'arn:aws:sts::' + {namespace}.aws_account"
                               " + ':assumed-role/' + assertion.sub.extract(':role/{role}') : assertion.sub"),
    }
    condition = (f"{namespace}.aws_account == '{account_id}'" if attribute_condition is True
                 else attribute_condition or None)
    return {"disabled": False, "attribute_mapping": mapping, "attribute_condition": condition,
            "oidc": {"issuer_uri": issuer_uri, "allowed_audiences": list(allowed_audiences or []), "jwks_json": None}}

