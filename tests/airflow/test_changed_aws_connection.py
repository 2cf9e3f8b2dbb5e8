"""A long-lived process (the triggerer, a worker) picks up a changed AWS connection with the next hook it builds:
shared credentials are keyed by the AWS connection's content, not by its id."""

from __future__ import annotations

import botocore.session
import google.auth.transport.requests
import pytest

from airflow_provider_gcp_wif import aws_connection

from .connections import gcs_hook, set_conn, wif_extra

pytestmark = pytest.mark.usefixtures("plugin_loaded")


def federated_subject(record) -> str:
    return record["principal"].rsplit("/subject/", 1)[-1]


def test_the_next_hook_after_an_aws_connection_changed_exchanges_with_the_new_identity(wif_env, emulator,
                                                                                      monkeypatch):
    aws = {"region_name": wif_env["aws_region"], "endpoint_url": wif_env["aws_endpoint"]}
    user = {"login": wif_env["aws_access_key_id"], "password": wif_env["aws_secret_access_key"]}
    account = wif_env["aws_account_id"]
    # Direct resource access (no impersonation): any identity of the trusted account gets a federated token.
    set_conn(monkeypatch, "gcp_x", "gcp_wif", wif_extra(wif_env, aws_conn_id="aws_x", impersonation_chain=None))
    set_conn(monkeypatch, "aws_x", "aws", aws, **user)  # the IAM user's own keys
    request = google.auth.transport.requests.Request()

    first, _ = gcs_hook(gcp_conn_id="gcp_x").get_credentials_and_project_id()
    first.refresh(request)
    set_conn(monkeypatch, "aws_x", "aws", {**aws, "role_arn": wif_env["role_arn"]}, **user)  # now: assume wif-role
    second, _ = gcs_hook(gcp_conn_id="gcp_x").get_credentials_and_project_id()
    second.refresh(request)
    unchanged, _ = gcs_hook(gcp_conn_id="gcp_x").get_credentials_and_project_id()
    unchanged.refresh(request)

    subjects = [federated_subject(r) for r in emulator.control.requests("sts")]
    assert len(subjects) == 2, subjects
    assert subjects[0] == f"arn:aws:iam::{account}:user/wif-user"
    assert subjects[1].startswith(f"arn:aws:sts::{account}:assumed-role/wif-role/")
    assert unchanged is second, "an unchanged connection still shares one credential (and one exchange)"
    assert first.valid, "hooks built before the change keep theirs until they are done"


def test_the_digest_follows_every_field_and_never_holds_the_secret(wif_env):
    from airflow.models.connection import Connection

    base = {"conn_type": "aws", "host": "h", "schema": "s", "login": "AKIAEXAMPLE",
            "password": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "port": 1, "extra": '{"role_arn": "r"}'}
    digest = aws_connection.aws_connection_digest(Connection(conn_id="aws_x", **base))
    assert digest == aws_connection.aws_connection_digest(Connection(conn_id="aws_y", **base)), "content, not the id"
    for field, other in (("conn_type", "aws2"), ("host", "h2"), ("schema", "s2"), ("login", "AKIAOTHER"),
                         ("password", "rotated"), ("port", 2), ("extra", '{"role_arn": "r2"}')):
        changed = aws_connection.aws_connection_digest(Connection(conn_id="aws_x", **{**base, field: other}))
        assert changed != digest, field
    assert base["password"] not in digest and aws_connection.aws_connection_digest(None) == "absent"


@pytest.mark.skipif(
    "GetWebIdentityToken" not in botocore.session.get_session().get_service_model("sts").operation_names,
    reason="this botocore has no GetWebIdentityToken (the route's error there: tests/airflow/test_jwt_route.py)")
def test_federation_jwt_never_reuses_the_old_identitys_jwt_after_the_aws_connection_changed(wif_env, emulator,
                                                                                          monkeypatch):
    """The jwt route caches the AWS JWT (minutes): the next hook after the AWS connection changed must ask AWS as
    the new identity, not hand Google the old identity's still-fresh JWT; an unchanged connection reuses it."""
    from airflow_provider_gcp_wif.chain import web_identity_token_supplier

    aws = {"region_name": wif_env["aws_region"], "endpoint_url": wif_env["aws_endpoint"]}
    user = {"login": wif_env["aws_access_key_id"], "password": wif_env["aws_secret_access_key"]}
    account = wif_env["aws_account_id"]
    set_conn(monkeypatch, "gcp_j", "gcp_wif", wif_extra(wif_env, aws_conn_id="aws_j", impersonation_chain=None,
                                                         federation="jwt", provider_id=wif_env["jwt_provider_id"]))
    set_conn(monkeypatch, "aws_j", "aws", aws, **user)
    request = google.auth.transport.requests.Request()

    first, _ = gcs_hook(gcp_conn_id="gcp_j").get_credentials_and_project_id()
    first.refresh(request)
    set_conn(monkeypatch, "aws_j", "aws", {**aws, "role_arn": wif_env["role_arn"]}, **user)
    second, _ = gcs_hook(gcp_conn_id="gcp_j").get_credentials_and_project_id()
    second.force_refresh(request)
    second.force_refresh(request)  # the same identity: the same JWT

    subjects = [federated_subject(r) for r in emulator.control.requests("sts")]
    assert subjects == [f"arn:aws:iam::{account}:user/wif-user"] + [wif_env["role_arn"]] * 2, subjects
    assert web_identity_token_supplier(second.settings, second.supplier).fetch_count == 1
