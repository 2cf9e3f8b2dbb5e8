"""The seed's API, the CLI's `token`, and what never leaves the process: secrets in logs, requests for bad settings."""

from __future__ import annotations

import datetime
import json
import logging
import subprocess
import sys

import google.auth.transport.requests
import pytest

from airflow_provider_gcp_wif import TokenService
from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.credentials import get_credentials
from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError
from airflow_provider_gcp_wif.refresh import utcnow
from tests.fixtures import emulator_hosts, listening_decoy

SEED_README_EXAMPLE = """
from airflow_provider_gcp_wif import TokenService
from os import getenv

token_service = TokenService(
  gcp_project_number=getenv('GCP_PROJECT_NUMBER'),
  gcp_workload_id=getenv('GCP_WORKLOAD_ID'),
  gcp_workload_provider=getenv('GCP_WORKLOAD_PROVIDER'),
  gcp_service_account_email=getenv('GCP_SERVICE_ACCOUNT_EMAIL'),
  aws_account_id=getenv('AWS_ACCOUNT_ID'),
  aws_role_name=getenv('AWS_ROLE_NAME'),
  aws_region=getenv('AWS_REGION')
)

sa_token, expiry_date = token_service.get_token()
"""


def test_the_seed_readme_example_runs_with_only_the_import_changed(emulator, seed_env):
    namespace: dict = {}
    exec(compile(SEED_README_EXAMPLE, "seed_readme_example", "exec"), namespace)
    token, expiry = namespace["sa_token"], namespace["expiry_date"]
    assert token and isinstance(expiry, str)
    parsed = datetime.datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ")
    assert 3500 < (parsed - utcnow()).total_seconds() <= 3600
    assert emulator.control.requests("iam.generateAccessToken")[0]["status"] == 200


def test_from_env_reuses_a_valid_token_instead_of_exchanging_again(emulator, seed_env):
    service = TokenService.from_env()
    first = service.get_token()
    assert TokenService.from_env().get_token() == first
    assert len(emulator.control.requests("sts")) == 1


def test_token_lifetime_and_scopes_from_the_seed_variables(emulator, seed_env, monkeypatch):
    monkeypatch.setenv("TOKEN_LIFETIME", "900")
    monkeypatch.setenv("TOKEN_SCOPES", "https://www.googleapis.com/auth/devstorage.read_only")
    service = TokenService.from_env()
    _, expiry = service.get_token()
    remaining = (datetime.datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ") - utcnow()).total_seconds()
    assert 800 < remaining <= 900
    assert service.settings.scopes == ("https://www.googleapis.com/auth/devstorage.read_only",)


def test_seed_arguments_are_validated_naming_the_argument(emulator):
    with pytest.raises(WifConfigError) as caught:
        TokenService("my-project", "aws-pool", "aws-provider", None, None, None, "us-east-1")
    assert caught.value.field == "gcp_project_number"
    with pytest.raises(WifConfigError) as caught:
        TokenService("123", "aws-pool", "aws-provider", None, "12", "wif-role", "us-east-1")
    assert caught.value.field == "aws_account_id"


def test_repr_shows_no_token(emulator, seed_env):
    service = TokenService.from_env()
    token, _ = service.get_token()
    assert token not in repr(service) and token not in str(service)
    assert token not in repr(service.credentials) and token not in repr(service.settings)


def test_cli_token_prints_token_and_expiry_as_json(emulator, seed_env):
    result = subprocess.run([sys.executable, "-m", "airflow_provider_gcp_wif.cli", "token", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["access_token"] and answer["expire_time"].endswith("Z")


def test_cli_token_failure_prints_step_and_fix(emulator, seed_env, monkeypatch):
    emulator.control.remove_bindings(seed_env["GCP_SERVICE_ACCOUNT_EMAIL"])
    result = subprocess.run([sys.executable, "-m", "airflow_provider_gcp_wif.cli", "token"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "impersonation" in result.stderr and "add-iam-policy-binding" in result.stderr
    assert result.stdout == ""


# -- bad settings send nothing -----------------------------------------------------------------------------------


@pytest.fixture
def decoy():
    """A listening socket standing in for a host a bad setting could point at: it must receive nothing."""
    with listening_decoy() as port_and_received:
        yield port_and_received


def test_malformed_settings_send_no_request(emulator, aws_env, decoy):
    from tests.core.settings_cases import MALFORMED

    port, received = decoy
    for _, extras, field in MALFORMED:
        raw = {"project_number": aws_env["project_number"], "pool_id": aws_env["pool_id"],
               "provider_id": aws_env["provider_id"], "sts_endpoint": aws_env["sts_endpoint"],
               "iam_endpoint": f"http://127.0.0.1:{port}", **extras}
        with pytest.raises(WifConfigError) as caught:
            WifSettings.from_extras({k: v for k, v in raw.items() if v is not None},
                                    allowed_endpoint_hosts=emulator_hosts(aws_env))
        assert caught.value.field == field
    assert emulator.control.requests() == []
    assert received == []


def test_foreign_sts_endpoint_is_refused_before_anything_is_signed(emulator, aws_env, decoy, monkeypatch):
    port, received = decoy
    monkeypatch.setenv("AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS", "")
    with pytest.raises(WifConfigError) as caught:
        TokenService(aws_env["project_number"], aws_env["pool_id"], aws_env["provider_id"], None,
                     sts_endpoint=f"https://sts.attacker.example:{port}/v1/token")
    assert caught.value.field == "sts_endpoint" and "allowed_endpoint_hosts" in caught.value.fix
    assert received == [] and emulator.control.requests() == []


def test_a_loopback_endpoint_is_the_process_environments_decision_not_the_callers(emulator, aws_env, decoy,
                                                                                    monkeypatch):
    """``TokenService`` has no Airflow: the process environment is the deployment, and its
    ``AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS`` is the one switch that admits a loopback endpoint, for keyword
    arguments and for ``GCP_WIF_STS_ENDPOINT`` alike (a local decoy port receives nothing until it is listed)."""
    port, received = decoy
    monkeypatch.setenv("AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS", "")
    decoy_url = f"http://127.0.0.1:{port}/v1/token"
    with pytest.raises(WifConfigError) as caught:
        TokenService(aws_env["project_number"], aws_env["pool_id"], aws_env["provider_id"], None,
                     sts_endpoint=decoy_url)
    assert caught.value.field == "sts_endpoint" and "AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS" in caught.value.fix
    seed = {"GCP_PROJECT_NUMBER": aws_env["project_number"], "GCP_WORKLOAD_ID": aws_env["pool_id"],
            "GCP_WORKLOAD_PROVIDER": aws_env["provider_id"], "GCP_WIF_STS_ENDPOINT": decoy_url}
    with pytest.raises(WifConfigError) as caught:
        TokenService.from_env(seed)
    assert caught.value.field == "GCP_WIF_STS_ENDPOINT"
    assert received == [] and emulator.control.requests() == []
    monkeypatch.setenv("AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS", "127.0.0.1")
    assert TokenService(aws_env["project_number"], aws_env["pool_id"], aws_env["provider_id"], None,
                        sts_endpoint=decoy_url).settings.sts_endpoint == decoy_url
    listed = TokenService.from_env({**seed, "AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS": "127.0.0.1"})
    assert listed.settings.sts_endpoint == decoy_url


# -- secrets stay out of logs, errors and reprs ------------------------------------------------------------------


def test_no_secret_in_logs_at_debug_errors_or_reprs(emulator, settings_for, role_supplier, aws_env, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("airflow_provider_gcp_wif", "google", "urllib3", "requests"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    supplier = role_supplier()
    credentials = get_credentials(settings_for(), supplier)
    headers: dict[str, str] = {}
    request = google.auth.transport.requests.Request()
    credentials.before_request(request, "GET", "http://x.invalid", headers)
    aws = supplier.get_aws_security_credentials(None, None)
    federated = credentials.chain.federated
    subject_token = federated.retrieve_subject_token(request)
    emulator.control.remove_bindings(aws_env["service_account"])
    with pytest.raises(WifExchangeError) as caught:
        credentials.force_refresh()
    secrets = {
        "google access token": credentials.token,
        "federated token": federated.token,
        "aws secret key": aws.secret_access_key,
        "aws session token": aws.session_token,
        "static aws secret": aws_env["aws_secret_access_key"],
        "subject token": subject_token,
        "signature": headers["authorization"],
    }
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("botocore"))
    surfaces = {"logs": ours, "error": str(caught.value) + repr(caught.value), "repr": repr(credentials) + repr(supplier)}
    for surface, text in surfaces.items():
        for name, secret in secrets.items():
            assert secret and secret not in text, f"{name} leaked into {surface}"
    assert "gcp_wif" in ours, "the provider's own debug lines were captured"
