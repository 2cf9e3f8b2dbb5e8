"""Connections and hooks for the in-process tests of tests/airflow: the emulator's ``gcp_wif`` extra (changed), a
connection set through its ``AIRFLOW_CONN_*`` variable, a stock ``GCSHook``, a service-account key."""

from __future__ import annotations

import json


def wif_extra(info, **changes):
    extra = json.loads(info["env"]["AIRFLOW_CONN_GCP_WIF_DEFAULT"])["extra"]
    extra.update(changes)
    return {k: v for k, v in extra.items() if v is not None}


def extra_of(info):
    return json.loads(info["env"]["AIRFLOW_CONN_GCP_WIF_DEFAULT"])["extra"]


def set_conn(monkeypatch, conn_id, conn_type, extra, **fields):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": conn_type, "extra": extra, **fields}))


def gcs_hook(**kwargs):
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    return GCSHook(**kwargs)


def _service_account_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "type": "service_account", "project_id": "keyed-project", "private_key_id": "1",
        "private_key": pem.decode(), "client_email": "keyed@keyed-project.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token",
    }
