"""Provider metadata for Airflow's provider manager (entry point ``apache_airflow_provider``).

Metadata only: importing this module imports nothing heavy (no Airflow, boto3 or google-auth). :data:`CONN_FIELDS`
is the one description of the connection form: Airflow 3.2+ reads it from here (``conn-fields``), and
``GcpWifHook.get_connection_form_widgets`` builds the Airflow 2.11 / 3.0 / 3.1 form from the same table.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_gcp_wif import __version__

CONN_TYPE = "gcp_wif"
HOOK_NAME = "Google Cloud (AWS Workload Identity Federation)"
HOOK_CLASS = "airflow_provider_gcp_wif.hooks.gcp_wif.GcpWifHook"

_STRING = {"type": ["string", "null"]}

#: field → label, description, JSON schema, placeholder. Airflow 3.2+'s React UI shows no placeholders for extra
#: fields (only label and description), so a description names the expected format where it matters. No key contains
#: a word Airflow masks (token, secret, password, service_account, private_key, proxy ...), so values stay readable in
#: the UI and logs.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "aws_conn_id": {
        "label": "AWS Connection Id",
        "description": "The Airflow AWS connection whose identity is exchanged (on MWAA: aws_default, the "
        "execution role). Its keys, role_arn, profile or the ambient role are used as the Amazon provider "
        "would.",
        "schema": {"type": ["string", "null"], "default": "aws_default"},
        "placeholder": "aws_default",
    },
    "project_number": {
        "label": "Pool Project Number",
        "description": "Number (digits, not the project ID) of the project that owns the workload identity pool.",
        "schema": {"type": ["string", "null"], "pattern": "^[0-9]*$"},
        "placeholder": "123456789012",
    },
    "pool_id": {
        "label": "Workload Identity Pool Id",
        "description": "The pool id (4-32 lowercase letters, digits, hyphens).",
        "schema": _STRING,
        "placeholder": "aws-pool",
    },
    "provider_id": {
        "label": "Workload Identity Provider Id",
        "description": "The AWS provider's id in that pool.",
        "schema": _STRING,
        "placeholder": "aws-provider",
    },
    "audience": {
        "label": "Audience (instead of the three ids)",
        "description": "The provider's full name, //iam.googleapis.com/projects/NUMBER/locations/global/"
        "workloadIdentityPools/POOL/providers/PROVIDER; leave empty when the three ids above are set.",
        "schema": _STRING,
        "placeholder": "//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/"
        "providers/PROVIDER",
    },
    "credential_config": {
        "label": "Credential Configuration JSON (optional)",
        "description": "The JSON written by `gcloud iam workload-identity-pools create-cred-config --aws`; its "
        "audience, service account and lifetime are used, its AWS credential source is replaced by the AWS "
        "connection.",
        "schema": {"type": ["string", "null"], "format": "multiline"},
        "placeholder": '{"type": "external_account", "audience": "//iam.googleapis.com/...", ...}',
    },
    "impersonation_chain": {
        "label": "Impersonation Chain (service accounts)",
        "description": "Service account email(s) to impersonate (airflow@PROJECT_ID.iam.gserviceaccount.com), "
        "comma separated; the last one's token is used. "
        "Empty: the federated identity is used directly. An operator's impersonation_chain replaces it.",
        "schema": _STRING,
        "placeholder": "airflow@PROJECT_ID.iam.gserviceaccount.com",
    },
    "project": {
        "label": "Project Id",
        "description": "Default project for operators that do not name one.",
        "schema": _STRING,
        "placeholder": "my-project",
    },
    "scope": {
        "label": "Scopes (comma separated)",
        "description": "OAuth scopes; default https://www.googleapis.com/auth/cloud-platform.",
        "schema": _STRING,
        "placeholder": "https://www.googleapis.com/auth/cloud-platform",
    },
    "lifetime_seconds": {
        "label": "Token Lifetime (seconds)",
        "description": "Lifetime of the impersonated token, 1-43200; over 3600 needs the org policy "
        "iam.allowServiceAccountCredentialLifetimeExtension.",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 43200, "default": 3600},
        "placeholder": "3600",
    },
    "quota_project_id": {
        "label": "Quota Project Id",
        "description": "Project billed for API quota, if not the resource's own.",
        "schema": _STRING,
        "placeholder": "",
    },
    "aws_region": {
        "label": "AWS Region",
        "description": "Region of the signed GetCallerIdentity request (sigv4) or of the GetWebIdentityToken call "
        "(jwt); default: the AWS connection's region, then AWS_REGION.",
        "schema": _STRING,
        "placeholder": "us-east-1",
    },
    "universe_domain": {
        "label": "Universe Domain",
        "description": "Google universe; default googleapis.com. Others must be allowed by the deployment.",
        "schema": _STRING,
        "placeholder": "googleapis.com",
    },
    "sts_endpoint": {
        "label": "STS Endpoint (Private Service Connect)",
        "description": "Token URL; default https://sts.googleapis.com/v1/token. Hosts other than Google's need "
        "[gcp_wif] allowed_endpoint_hosts.",
        "schema": {"type": ["string", "null"], "format": "url"},
        "placeholder": "https://sts.googleapis.com/v1/token",
    },
    "iam_endpoint": {
        "label": "IAM Credentials Endpoint (Private Service Connect)",
        "description": "Base URL; default https://iamcredentials.googleapis.com.",
        "schema": {"type": ["string", "null"], "format": "url"},
        "placeholder": "https://iamcredentials.googleapis.com",
    },
    "num_retries": {
        "label": "Number of Retries",
        "description": "Retries of transient failures, as on the Google Cloud connection.",
        "schema": {"type": ["integer", "null"], "minimum": 0, "maximum": 20, "default": 5},
        "placeholder": "5",
    },
    "federation": {
        "label": "Federation Route",
        "description": "sigv4 (default): a signed AWS GetCallerIdentity request, for an AWS provider of the pool. "
        "jwt: a JWT from AWS STS GetWebIdentityToken (IAM outbound identity federation, botocore 1.41.0+), for an "
        "OIDC provider trusting the AWS account's issuer.",
        "schema": {"type": ["string", "null"], "enum": ["sigv4", "jwt", None], "default": "sigv4"},
        "placeholder": "sigv4",
    },
}

HIDDEN_FIELDS = ["host", "schema", "login", "password", "port"]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-gcp-wif",
        "name": "Google Cloud via AWS Workload Identity Federation",
        "description": "Keyless Google Cloud access for Airflow on AWS (MWAA, ECS, EKS, EC2): a `gcp_wif` "
        "connection turns an Airflow AWS connection's identity into Google credentials.",
        "versions": [__version__],
        "secrets-backends": ["airflow_provider_gcp_wif.secrets.secret_manager.CloudSecretManagerWifBackend"],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": HOOK_CLASS,
                "hook-name": HOOK_NAME,
                "ui-field-behaviour": {
                    "hidden-fields": HIDDEN_FIELDS,
                    "relabeling": {},
                    "placeholders": {name: f["placeholder"] for name, f in CONN_FIELDS.items() if f["placeholder"]},
                },
                "conn-fields": {
                    name: {"label": f["label"], "description": f["description"], "schema": f["schema"]}
                    for name, f in CONN_FIELDS.items()
                },
            }
        ],
        "config": {
            "gcp_wif": {
                "description": "Deployment-wide settings of airflow-provider-gcp-wif.",
                "options": {
                    "allowed_endpoint_hosts": {
                        "description": "Comma-separated hosts (or .suffixes) that gcp_wif connections may use as "
                        "STS / IAM Credentials endpoints besides Google's own and loopback. Connection editors "
                        "cannot change it: the signed AWS request is a credential and goes only to these hosts.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "sts.corp.example,.psc.corp.example",
                        "default": "",
                    }
                },
            }
        },
    }
