"""Provider metadata for Airflow's provider manager (entry point ``apache_airflow_provider``).

Metadata only: importing this module imports nothing heavy (no Airflow, boto3 or google-auth). :data:`CONN_FIELDS`
is the one description of the connection form, derived from :mod:`airflow_provider_gcp_wif.fields`: Airflow 3.2+ reads
it from here (``conn-fields``), and ``GcpWifHook.get_connection_form_widgets`` builds the Airflow 2.11 / 3.0 / 3.1
form from the same table.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_gcp_wif import __version__
from airflow_provider_gcp_wif.constants import CONFIG_SECTION, CONN_TYPE
from airflow_provider_gcp_wif.fields import FIELDS

HOOK_NAME = "Google Cloud (AWS Workload Identity Federation)"
HOOK_CLASS = "airflow_provider_gcp_wif.hooks.gcp_wif.GcpWifHook"

#: field → label, description, JSON schema, placeholder: the form's view of
#: :data:`airflow_provider_gcp_wif.fields.FIELDS` (where each is written, and why no key contains a word Airflow masks).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    field.key: {
        "label": field.label,
        "description": field.description,
        "schema": field.json_schema,
        "placeholder": field.form_placeholder,
    }
    for field in FIELDS
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
            CONFIG_SECTION: {
                "description": "Deployment-wide settings of airflow-provider-gcp-wif.",
                "options": {
                    "allowed_endpoint_hosts": {
                        "description": "Comma-separated hosts (or .suffixes) that gcp_wif connections may use as "
                        "STS / IAM Credentials endpoints besides Google's own, loopback ones (an emulator, a local "
                        "proxy) included: each exactly as written (localhost is not 127.0.0.1). Connection editors "
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
