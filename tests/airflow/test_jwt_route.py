"""``federation: jwt`` through the Amazon provider's ``AwsBaseHook`` (the AWS identity source of every Airflow
path), under each MWAA image's own botocore (scripts/matrix.py runs the smoke selection on all eight): where botocore
knows GetWebIdentityToken (1.41.0+: MWAA 2.11.2, 3.2.1, 3.3.1) the AWS connection's role gets a JWT from the emulated
AWS on its regional endpoint; where it does not (1.34-1.39: MWAA 2.9.2-2.11.0, 3.0.6) the error says which
boto3/botocore is needed, before any call to AWS."""

from __future__ import annotations

import botocore
import pytest
from packaging.version import Version

from airflow_provider_gcp_wif.aws_connection import aws_connection_supplier
from airflow_provider_gcp_wif.diagnosis import jwt_claims
from airflow_provider_gcp_wif.errors import WifConfigError
from airflow_provider_gcp_wif.supplier import GET_WEB_IDENTITY_TOKEN_BOTOCORE, WebIdentityTokenSupplier
from tests.fixtures import JWT_PROVIDER, jwt_provider

from .connections import gcs_hook, set_conn, wif_extra

pytestmark = [pytest.mark.smoke, pytest.mark.usefixtures("plugin_loaded")]


def test_the_aws_connections_role_gets_a_jwt_or_the_version_needed_is_named(wif_env, emulator, monkeypatch):
    set_conn(monkeypatch, "aws_jwt", "aws",
             {"region_name": wif_env["aws_region"], "endpoint_url": wif_env["aws_endpoint"],
              "role_arn": wif_env["role_arn"]},
             login=wif_env["aws_access_key_id"], password=wif_env["aws_secret_access_key"])
    supplier = aws_connection_supplier("aws_jwt", None)
    audience = (f"https://iam.googleapis.com/projects/{wif_env['project_number']}/locations/global/"
                f"workloadIdentityPools/{wif_env['pool_id']}/providers/{wif_env['provider_id']}")
    jwt = WebIdentityTokenSupplier(supplier, audience)
    if Version(botocore.__version__) >= Version(GET_WEB_IDENTITY_TOKEN_BOTOCORE):
        claims = jwt_claims(jwt.get_subject_token(None, None))
        assert claims["sub"] == wif_env["role_arn"] and claims["aud"] in (audience, [audience])
        assert claims["https://sts.amazonaws.com/"]["source_region"] == wif_env["aws_region"]
    else:
        with pytest.raises(WifConfigError) as caught:
            jwt.get_subject_token(None, None)
        assert caught.value.field == "federation"
        assert botocore.__version__ in caught.value.problem
        assert f"botocore>={GET_WEB_IDENTITY_TOKEN_BOTOCORE}" in caught.value.fix


def test_a_stock_gcs_hook_on_a_jwt_connection_acts_as_the_service_account(wif_env, emulator, monkeypatch,
                                                                         plugin_loaded):
    jwt_provider(emulator.control, wif_env)
    set_conn(monkeypatch, "aws_jwt", "aws",
             {"region_name": wif_env["aws_region"], "endpoint_url": wif_env["aws_endpoint"],
              "role_arn": wif_env["role_arn"]},
             login=wif_env["aws_access_key_id"], password=wif_env["aws_secret_access_key"])
    set_conn(monkeypatch, "gcp_jwt", "gcp_wif",
             wif_extra(wif_env, aws_conn_id="aws_jwt", provider_id=JWT_PROVIDER, federation="jwt"))
    hook = gcs_hook(gcp_conn_id="gcp_jwt")
    if Version(botocore.__version__) < Version(GET_WEB_IDENTITY_TOKEN_BOTOCORE):
        with pytest.raises(WifConfigError) as caught:
            hook.list(wif_env["bucket"])
        assert caught.value.field == "federation"
        return
    hook.list(wif_env["bucket"])
    assert {r["principal"] for r in emulator.control.requests("storage")} == {wif_env["service_account"]}
    assert [r.get("oidc_sub") for r in emulator.control.requests("sts")] == [wif_env["role_arn"]]
