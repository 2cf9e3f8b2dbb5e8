"""One cold token through a stock hook and the Amazon provider's ``AwsBaseHook`` (an AWS connection that assumes a
role): what botocore builds for it, and what reaches the secrets masker. Counted, not timed."""

from __future__ import annotations

import urllib.parse

import botocore.session
import google.auth.transport.requests
import pytest

from airflow_provider_gcp_wif import botocore_sharing, masking
from airflow_provider_gcp_wif import credentials as wif_credentials

from .connections import gcs_hook

pytestmark = pytest.mark.usefixtures("plugin_loaded")


def cold_token() -> None:
    wif_credentials.clear_cache()  # a new process's first token: new hook, new AWS session, new exchange
    credentials, _ = gcs_hook(gcp_conn_id="gcp_wif_default").get_credentials_and_project_id()
    credentials.refresh(google.auth.transport.requests.Request())
    assert credentials.token


@pytest.mark.skipif(not botocore_sharing.applies(), reason="botocore outside PROVEN_BOTOCORE: handlers not shared")
def test_a_cold_token_builds_only_the_assume_role_client_and_registers_no_botocore_handlers(wif_env, monkeypatch):
    assert "role_arn" in wif_env["env"]["AIRFLOW_CONN_AWS_DEFAULT"]
    cold_token()  # the process's first: may parse botocore's data and register its handlers once
    registered: list[int] = []
    clients: list[str] = []
    register, create_client = botocore.session.Session._register_builtin_handlers, botocore.session.Session.create_client

    def counting_register(self, events):
        registered.append(1)
        return register(self, events)

    def counting_client(self, service_name, *args, **kwargs):
        clients.append(service_name)
        return create_client(self, service_name, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "_register_builtin_handlers", counting_register)
    monkeypatch.setattr(botocore.session.Session, "create_client", counting_client)
    cold_token()
    assert clients == ["sts"], "only AwsBaseHook's AssumeRole client is built for a cold token"
    assert registered == [], "botocore's built-in handlers were registered again for AwsBaseHook's sessions"


def test_each_secret_of_a_cold_token_reaches_the_masker_once(wif_env, monkeypatch):
    heard: list[str] = []
    monkeypatch.setattr(masking, "_listeners", [heard.append])
    monkeypatch.setattr(masking, "_announced", set())
    cold_token()
    # AWS secret access key and session token of the assumed role; the subject token's signature and its session
    # token as the subject token quotes it (when quoting changes it; the raw one is not heard twice); federated
    # token, access token.
    session_token = heard[1]
    quoted_differs = urllib.parse.quote(session_token) != session_token
    assert len(heard) == 5 + quoted_differs and len(set(heard)) == len(heard), [len(value) for value in heard]
