"""``CloudSecretManagerWifBackend``: Airflow's Google Secret Manager backend, keyless from AWS. In process (kwargs
validated before any request, lookups through the emulated clouds, the stock class's contract) and in real
Airflow processes reading a connection and a variable through it."""

from __future__ import annotations

import ast
import inspect
import json
import textwrap

import pytest

from airflow_provider_gcp_wif import credentials as wif_credentials
from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError
from tests.airflow_process import airflow, airflow_environment, migrate

BACKEND = "airflow_provider_gcp_wif.secrets.secret_manager.CloudSecretManagerWifBackend"
CONNECTION = {"conn_type": "postgres", "host": "db.internal.example", "login": "reporting", "password": "s3cr3t-pw",
              "port": 5432, "schema": "analytics"}


def backend_kwargs(info, **changes):
    kwargs = {
        "project_id": info["project_id"],
        "project_number": info["project_number"], "pool_id": info["pool_id"], "provider_id": info["provider_id"],
        "impersonation_chain": info["service_account"],
        "sts_endpoint": info["sts_endpoint"], "iam_endpoint": info["iam_endpoint"],
        "secret_manager_endpoint": info["secret_manager_endpoint"],
        "aws_role_arn": info["role_arn"], "aws_region": info["aws_region"],
    }
    kwargs.update(changes)
    return {k: v for k, v in kwargs.items() if v is not None}


def store_secrets(emulator):
    member = f"serviceAccount:{emulator.info['service_account']}"
    grant = [{"role": "roles/secretmanager.secretAccessor", "members": [member]}]
    emulator.control.add_secret_version("airflow-connections-reporting_db", json.dumps(CONNECTION), iam=grant)
    emulator.control.add_secret_version("airflow-variables-greeting", "hello from Secret Manager", iam=grant)
    # Reads of missing secrets are NOT_FOUND (not PERMISSION_DENIED) with a project-level grant, as on Google.
    emulator.control.set_project_iam([{"role": "roles/secretmanager.secretAccessor", "members": [member]}])


@pytest.fixture
def aws_user(emulator, monkeypatch, tmp_path):
    """boto3's default chain = the fixture IAM user (what the execution role is on MWAA); STS = moto."""
    info = emulator.info
    wif_credentials.clear_cache()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", info["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", info["aws_secret_access_key"])
    monkeypatch.setenv("AWS_REGION", info["aws_region"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", info["aws_endpoint"])
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS", "127.0.0.1")
    yield info
    wif_credentials.clear_cache()


def make_backend(**kwargs):
    from airflow_provider_gcp_wif.secrets.secret_manager import CloudSecretManagerWifBackend

    return CloudSecretManagerWifBackend(**kwargs)


# -- in process ---------------------------------------------------------------------------------------------------


def test_reads_a_connection_and_a_variable_as_the_service_account(aws_user, emulator):
    store_secrets(emulator)
    backend = make_backend(**backend_kwargs(aws_user))

    assert json.loads(backend.get_conn_value("reporting_db")) == CONNECTION
    assert backend.get_variable("greeting") == "hello from Secret Manager"
    assert backend.get_variable("no_such_variable") is None

    reads = emulator.control.requests("secretmanager")
    assert [r["status"] for r in reads] == [200, 200, 404]
    assert {r["principal"] for r in reads} == {aws_user["service_account"]}
    assert len(emulator.control.requests("sts")) == 1


def test_constructing_the_backend_makes_no_request(aws_user, emulator):
    make_backend(**backend_kwargs(aws_user))

    assert emulator.control.requests() == []


def test_direct_access_with_the_default_chain_as_it_is(aws_user, emulator):
    # No role, no service account: the IAM user's own federated principal (any principal of the pool).
    everyone = (f"principalSet://iam.googleapis.com/projects/{aws_user['project_number']}/locations/global/"
                f"workloadIdentityPools/{aws_user['pool_id']}/*")
    emulator.control.add_secret_version("airflow-variables-direct", "direct",
                                        iam=[{"role": "roles/secretmanager.secretAccessor", "members": [everyone]}])

    backend = make_backend(**backend_kwargs(aws_user, aws_role_arn=None, impersonation_chain=None))

    assert backend.get_variable("direct") == "direct"
    (read,) = emulator.control.requests("secretmanager")
    assert read["principal"].startswith("principal://") and ":user/" in read["principal"]


def test_a_failed_exchange_names_the_step(aws_user, emulator):
    store_secrets(emulator)
    emulator.control.remove_bindings(aws_user["service_account"])

    with pytest.raises(WifExchangeError) as caught:
        make_backend(**backend_kwargs(aws_user)).get_variable("greeting")

    assert caught.value.step == "impersonation"


@pytest.mark.parametrize(("changes", "kwarg", "words"), [
    ({"aws_conn_id": "aws_default"}, "aws_conn_id", "cannot read an AWS connection"),
    ({"gcp_key_path": "/keys/sa.json"}, "gcp_key_path", "keyless"),
    ({"gcp_keyfile_dict": {"type": "service_account"}}, "gcp_keyfile_dict", "keyless"),
    ({"impersonation_chian": "a@b.iam.gserviceaccount.com"}, "impersonation_chian", "impersonation_chain"),
    ({"project_number": "my-project"}, "project_number", "digits only"),
    ({"pool_id": None, "audience": None}, "pool_id", "required"),
    ({"impersonation_chain": "not an email"}, "impersonation_chain", "service-account email"),
    ({"project_id": None}, "project_id", "required"),
    ({"aws_role_arn": "wif-role"}, "aws_role_arn", "IAM role ARN"),
    ({"sts_endpoint": "https://sts.attacker.example/v1/token"}, "sts_endpoint", "not a Google endpoint"),
    ({"secret_manager_endpoint": "https://secrets.attacker.example"}, "secret_manager_endpoint",
     "not a Google endpoint"),
    ({"secret_manager_endpoint": "http://secretmanager.googleapis.com"}, "secret_manager_endpoint", "plain http"),
])
def test_a_bad_kwarg_is_named_before_any_request(aws_user, emulator, changes, kwarg, words):
    with pytest.raises(WifConfigError) as caught:
        make_backend(**backend_kwargs(aws_user, **changes))

    assert caught.value.field == kwarg
    assert words in str(caught.value)
    assert "backend_kwargs" in str(caught.value)
    assert emulator.control.requests() == []


def test_the_stock_constructor_sets_no_attribute_this_one_lacks(aws_user):
    """The contract with the Google provider: the stock ``__init__`` (skipped on purpose) must not set state that
    the inherited methods need and this ``__init__`` does not set."""
    from airflow.providers.google.cloud.secrets.secret_manager import CloudSecretManagerBackend

    source = textwrap.dedent(inspect.getsource(CloudSecretManagerBackend.__init__))
    stock = {node.attr for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
             and isinstance(node.value, ast.Name) and node.value.id == "self"}
    assert {"credentials", "project_id", "connections_prefix"} <= stock  # the parse found the assignments

    ours = make_backend(**backend_kwargs(aws_user))

    assert stock <= set(vars(ours)), stock - set(vars(ours))
    assert "client" in vars(type(ours)) and isinstance(inspect.getattr_static(type(ours), "client"), property)


def test_airflow_lists_it_among_the_providers_secrets_backends():
    from airflow.providers_manager import ProvidersManager

    assert BACKEND in ProvidersManager().secrets_backend_class_names


# -- real Airflow processes ---------------------------------------------------------------------------------------


def test_airflow_reads_a_connection_and_a_variable_through_the_backend(emulator, tmp_path):
    info = emulator.info
    store_secrets(emulator)
    environment = airflow_environment(
        emulator, tmp_path / "airflow-home",
        AIRFLOW__SECRETS__BACKEND=BACKEND,
        AIRFLOW__SECRETS__BACKEND_KWARGS=json.dumps(backend_kwargs(info)),
        # The AWS identity as boto3's default chain finds it (on MWAA: the execution role's container credentials).
        AWS_ACCESS_KEY_ID=info["aws_access_key_id"], AWS_SECRET_ACCESS_KEY=info["aws_secret_access_key"],
        AWS_REGION=info["aws_region"],
    )
    for name in ("AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_CONN_GCP_WIF_DEFAULT"):
        environment.pop(name)  # nothing but the backend knows any connection
    migrate(environment)
    emulator.control.clear_log()

    variable = airflow(["variables", "get", "greeting"], environment)
    connection = airflow(["connections", "get", "reporting_db", "-o", "json"], environment)
    missing = airflow(["variables", "get", "no_such_variable"], environment, check=False)

    assert variable.stdout.strip().splitlines()[-1] == "hello from Secret Manager"
    (shown,) = json.loads(connection.stdout[connection.stdout.index("["):])
    assert (shown["conn_type"], shown["host"], shown["login"]) == ("postgres", "db.internal.example", "reporting")
    assert missing.returncode != 0 and "no_such_variable" in missing.stdout + missing.stderr
    assert "Traceback" not in variable.stderr + connection.stderr
    reads = emulator.control.requests("secretmanager")
    assert {(r["path"].split("/secrets/")[1].split("/")[0], r["status"]) for r in reads} >= {
        ("airflow-variables-greeting", 200), ("airflow-connections-reporting_db", 200),
        ("airflow-variables-no_such_variable", 404)}
    assert {r["principal"] for r in reads} == {info["service_account"]}
    assert all(r["status"] == 200 for r in emulator.control.requests("sts"))


def test_tokens_minted_for_the_backend_reach_the_secrets_masker(aws_user, emulator):
    """In a fresh interpreter that imported no plugin (Airflow may build its secrets backend first)."""
    import os
    import subprocess
    import sys

    store_secrets(emulator)
    code = textwrap.dedent("""
        import importlib, json, os
        from airflow_provider_gcp_wif.secrets.secret_manager import CloudSecretManagerWifBackend
        backend = CloudSecretManagerWifBackend(**json.loads(os.environ["KWARGS"]))
        assert backend.get_variable("greeting") == "hello from Secret Manager"
        for name in ("airflow.sdk.log", "airflow.sdk.execution_time.secrets_masker", "airflow.utils.log.secrets_masker"):
            try:
                redact = getattr(importlib.import_module(name), "redact", None)
            except ImportError:
                continue
            if redact is not None:
                break
        print(redact("token " + backend.credentials.token))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "KWARGS": json.dumps(backend_kwargs(aws_user))})

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "token ***"
