"""``federation: jwt`` against the emulated clouds: the AWS identity's GetWebIdentityToken (signature-checked,
permission-checked, enabled per account like the real feature), its failures with fixes that work when applied,
and a duration that never outlives the AWS session."""

from __future__ import annotations

import datetime
import re
import shlex

import boto3
import botocore.session
import pytest
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

from airflow_provider_gcp_wif import masking
from airflow_provider_gcp_wif.chain import jwt_audience
from airflow_provider_gcp_wif.diagnosis import jwt_claims
from airflow_provider_gcp_wif.errors import WifExchangeError
from airflow_provider_gcp_wif.supplier import Boto3Supplier, WebIdentityTokenSupplier
from tests.fixtures import JWT_PROVIDER, jwt_provider, sts_model_without_get_web_identity_token


def _aws_cli_commands(text: str) -> list[str]:
    return re.findall(r"`(aws [^`]+)`", text)


def apply_aws_cli(command: str, session: boto3.session.Session, endpoint_url: str) -> None:
    """Run a printed `aws <service> <operation> --flag value ...` through boto3 with the same parameters (the AWS
    CLI is boto3's own front end: kebab-case operation and flags are botocore's CamelCase names)."""
    words = shlex.split(command)
    assert words[0] == "aws", command
    service, operation, rest = words[1], words[2].replace("-", "_"), words[3:]
    params: dict[str, str] = {}
    while rest:
        flag = rest.pop(0)
        assert flag.startswith("--"), command
        params["".join(part.capitalize() for part in flag[2:].split("-"))] = rest.pop(0) if rest and not \
            rest[0].startswith("--") else ""
    client = session.client(service, region_name=session.region_name, endpoint_url=endpoint_url)
    getattr(client, operation)(**params)


def _audience(info) -> str:
    return (f"https://iam.googleapis.com/projects/{info['project_number']}/locations/global/workloadIdentityPools/"
            f"{info['pool_id']}/providers/{info['provider_id']}")


def test_the_role_gets_an_aws_signed_jwt_for_the_providers_audience_reused_until_near_expiry(
        aws_env, role_supplier, settings_for):
    settings = settings_for(federation="jwt")
    heard: list[str] = []
    masking.add_listener(heard.append)
    jwt = WebIdentityTokenSupplier(role_supplier(), jwt_audience(settings))
    token = jwt.get_subject_token(None, None)
    claims = jwt_claims(token)
    assert claims["aud"] in (_audience(aws_env), [_audience(aws_env)])
    assert claims["sub"] == aws_env["role_arn"] and claims["iss"] == aws_env["aws_issuer_url"]
    assert claims["https://sts.amazonaws.com/"]["aws_account"] == aws_env["aws_account_id"]
    assert 60 <= claims["exp"] - claims["iat"] <= 300
    assert token in heard  # the masker knew it before anyone could log it
    assert jwt.get_subject_token(None, None) == token and jwt.fetch_count == 1


def test_a_role_session_shorter_than_the_wanted_jwt_gets_a_jwt_that_ends_before_it(aws_env):
    """Differential: asking AWS for the wanted 3600 s with a 900-s session fails (SessionDurationEscalation);
    the supplier's request succeeds and ends within the session."""
    base = boto3.session.Session(region_name=aws_env["aws_region"])
    fetcher = AssumeRoleCredentialFetcher(client_creator=base._session.create_client,
                                          source_credentials=base.get_credentials(), role_arn=aws_env["role_arn"],
                                          extra_args={"RoleSessionName": "short", "DurationSeconds": 900})
    core = botocore.session.Session()
    core._credentials = DeferredRefreshableCredentials(method="assume-role", refresh_using=fetcher.fetch_credentials)
    session = boto3.session.Session(botocore_session=core, region_name=aws_env["aws_region"])
    supplier = Boto3Supplier(lambda: session, region=aws_env["aws_region"], identity_key="short")
    with pytest.raises(Exception) as escalated:
        session.client("sts").get_web_identity_token(Audience=[_audience(aws_env)], DurationSeconds=3600,
                                                     SigningAlgorithm="RS256")
    assert "SessionDurationEscalationException" in str(escalated.value)
    jwt = WebIdentityTokenSupplier(supplier, _audience(aws_env), duration_seconds=3600)
    claims = jwt_claims(jwt.get_subject_token(None, None))
    session_end = supplier.credentials_expiry()
    assert session_end is not None
    assert claims["exp"] <= session_end.timestamp()
    assert claims["exp"] - claims["iat"] >= 60


def test_feature_disabled_in_the_account_names_the_step_and_the_fix_that_enables_it(aws_env, emulator, role_supplier):
    emulator.control.set_aws_outbound_federation(False)
    jwt = WebIdentityTokenSupplier(role_supplier(), _audience(aws_env))
    with pytest.raises(WifExchangeError) as caught:
        jwt.get_subject_token(None, None)
    err = caught.value
    assert err.step == "aws_credentials" and err.code == "OutboundWebIdentityFederationDisabledException"
    assert "GetWebIdentityToken" in err.reason and "sigv4" in err.fix
    commands = _aws_cli_commands(err.fix)
    assert commands == ["aws iam enable-outbound-web-identity-federation"]
    for command in commands:
        apply_aws_cli(command, boto3.session.Session(region_name=aws_env["aws_region"]), aws_env["aws_endpoint"])
    assert jwt_claims(jwt.get_subject_token(None, None))["sub"] == aws_env["role_arn"]


def test_a_role_without_the_permission_gets_a_policy_command_that_works_when_applied(aws_env, role_supplier):
    supplier = role_supplier(aws_env["no_jwt_role_arn"])
    jwt = WebIdentityTokenSupplier(supplier, _audience(aws_env))
    with pytest.raises(WifExchangeError) as caught:
        jwt.get_subject_token(None, None)
    err = caught.value
    assert err.step == "aws_credentials" and err.code == "AccessDenied", err
    commands = _aws_cli_commands(err.fix)
    role_name = aws_env["no_jwt_role_arn"].rsplit("/", 1)[1]
    assert len(commands) == 1 and f"--role-name {role_name}" in commands[0], err.fix
    admin = boto3.session.Session(region_name=aws_env["aws_region"])
    apply_aws_cli(commands[0], admin, aws_env["aws_endpoint"])
    try:
        claims = jwt_claims(jwt.get_subject_token(None, None))
        assert claims["sub"] == aws_env["no_jwt_role_arn"]
        other = WebIdentityTokenSupplier(supplier, _audience(aws_env).replace(aws_env["provider_id"], "other-provider"))
        with pytest.raises(WifExchangeError):  # the policy allows this audience only
            other.get_subject_token(None, None)
    finally:
        admin.client("iam", endpoint_url=aws_env["aws_endpoint"]).delete_role_policy(RoleName=role_name, PolicyName="gcp-wif-web-identity-token")


# -- the whole route: AWS JWT → Google OIDC provider → impersonation ------------------------------------------------

def _sts_calls(emulator) -> list[dict]:
    return [r for r in emulator.control.requests("sts")]


def test_the_same_identity_gets_a_working_token_through_both_routes(emulator, aws_env, settings_for, role_supplier,
                                                                    jwt_settings):
    """Differential: one AWS identity, one service account; sigv4 through the AWS provider, jwt through the OIDC
    provider; both end as the same service account's token, and the jwt route's subject token is AWS's JWT."""
    from airflow_provider_gcp_wif.credentials import get_credentials
    from airflow_provider_gcp_wif.transport import exchange_transport

    supplier = role_supplier()
    tokens = {}
    for name, settings in (("sigv4", settings_for()), ("jwt", jwt_settings)):
        credentials = get_credentials(settings, supplier)
        credentials.refresh(exchange_transport())
        tokens[name] = credentials.token
        assert credentials.service_account_email == aws_env["service_account"]
    assert tokens["sigv4"] and tokens["jwt"] and tokens["sigv4"] != tokens["jwt"]
    sigv4_call, jwt_call = _sts_calls(emulator)
    assert sigv4_call["aws_arn"].startswith(f"arn:aws:sts::{aws_env['aws_account_id']}:assumed-role/wif-role/")
    assert "oidc_sub" not in sigv4_call
    assert jwt_call["oidc_sub"] == aws_env["role_arn"] and "aws_arn" not in jwt_call
    import requests

    for token in tokens.values():  # each is the service account's own token for a Google API
        answer = requests.get(f"{aws_env['crm_endpoint']}/v1/projects/{aws_env['project_id']}",
                              headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 200, answer.text
    principals = [r["principal"] for r in emulator.control.requests("crm")]
    assert principals == [aws_env["service_account"]] * 2, principals


def test_one_jwt_serves_every_exchange_until_it_nears_expiry(emulator, aws_env, role_supplier, jwt_settings):
    from airflow_provider_gcp_wif.chain import web_identity_token_supplier
    from airflow_provider_gcp_wif.credentials import get_credentials

    supplier = role_supplier()
    direct = jwt_settings.replace(impersonation_chain="")  # every refresh is an STS exchange
    credentials = get_credentials(direct, supplier)
    assert get_credentials(direct, supplier) is credentials
    credentials.force_refresh()
    credentials.force_refresh()
    assert len(_sts_calls(emulator)) == 2
    assert web_identity_token_supplier(direct, supplier).fetch_count == 1
    # ... and a new one is asked for once it nears its expiry (Google gives a federated token no longer than it).
    jwt = web_identity_token_supplier(direct, supplier)
    jwt.clock = lambda: datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(
        seconds=250)
    assert jwt.get_subject_token(None, None) and jwt.fetch_count == 2


def test_a_child_process_gets_a_token_from_the_jwt_credential_file(emulator, aws_env, role_supplier, jwt_settings):
    import json
    import subprocess
    import sys

    from airflow_provider_gcp_wif.child_credentials import credential_file
    from airflow_provider_gcp_wif.integration import WifBinding

    binding = WifBinding(jwt_settings, role_supplier())
    child = ("import google.auth, google.auth.transport.requests, json, os; "
             "c, _ = google.auth.load_credentials_from_file(os.environ['GOOGLE_APPLICATION_CREDENTIALS']); "
             "c = c.with_scopes(['https://www.googleapis.com/auth/cloud-platform']); "
             "c.refresh(google.auth.transport.requests.Request()); print(json.dumps({'ok': bool(c.token)}))")
    with credential_file(jwt_settings, binding.credentials) as path:
        with open(path) as handle:
            config = json.load(handle)
        assert config["subject_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
        assert config["credential_source"]["url"].startswith("http://127.0.0.1:")
        assert "environment_id" not in config["credential_source"]
        done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"ok": True}
    assert [r.get("oidc_sub") for r in _sts_calls(emulator)] == [aws_env["role_arn"]]


def test_a_clock_out_of_step_with_google_names_the_clock(emulator, aws_env, role_supplier, jwt_settings):
    """This host's clock 10 minutes behind AWS's and Google's: the JWT it holds looks fresh here but is stale at
    Google (the emulated clouds' clock moves; this process's does not)."""
    from airflow_provider_gcp_wif.chain import web_identity_token_supplier
    from airflow_provider_gcp_wif.credentials import get_credentials
    from airflow_provider_gcp_wif.transport import exchange_transport

    supplier = role_supplier()
    web_identity_token_supplier(jwt_settings, supplier).get_subject_token(None, None)
    emulator.control.advance_clock(600)
    with pytest.raises(WifExchangeError) as caught:
        get_credentials(jwt_settings, supplier).refresh(exchange_transport())
    err = caught.value
    assert err.step == "sts_exchange" and err.code == "invalid_grant", err
    assert "stale" in err.reason and "clock" in err.fix and "169.254.169.123" in err.fix


def test_the_doctor_passes_every_step_of_the_jwt_route(emulator, aws_env, jwt_settings, monkeypatch):
    import io

    from airflow_provider_gcp_wif import cli

    for key, value in {"GCP_PROJECT_NUMBER": aws_env["project_number"], "GCP_WORKLOAD_ID": aws_env["pool_id"],
                       "GCP_WORKLOAD_PROVIDER": JWT_PROVIDER, "GCP_SERVICE_ACCOUNT_EMAIL": aws_env["service_account"],
                       "AWS_ACCOUNT_ID": aws_env["aws_account_id"], "AWS_ROLE_NAME": "wif-role",
                       "GCP_WIF_STS_ENDPOINT": aws_env["sts_endpoint"], "GCP_WIF_IAM_ENDPOINT": aws_env["iam_endpoint"],
                       "GCP_WIF_FEDERATION": "jwt"}.items():
        monkeypatch.setenv(key, value)
    out = io.StringIO()
    code = cli.main(["doctor", "--api-url", aws_env["crm_endpoint"]], out=out, err=io.StringIO())
    text = out.getvalue()
    assert code == 0, text
    assert f"JWT from issuer {aws_env['aws_issuer_url']} for {aws_env['role_arn']}" in text
    assert [r.get("oidc_sub") for r in emulator.control.requests("sts")] == [aws_env["role_arn"]]


def test_an_old_botocore_stops_the_exchange_with_the_version_needed(aws_env, role_supplier, jwt_settings, tmp_path,
                                                                    monkeypatch):
    from airflow_provider_gcp_wif.credentials import get_credentials
    from airflow_provider_gcp_wif.errors import WifConfigError
    from airflow_provider_gcp_wif.transport import exchange_transport

    sts_model_without_get_web_identity_token(tmp_path)
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    with pytest.raises(WifConfigError) as caught:
        get_credentials(jwt_settings, role_supplier()).refresh(exchange_transport())
    assert caught.value.field == "federation" and "1.41.0" in caught.value.fix


def test_the_seed_api_takes_the_jwt_route(emulator, seed_env, jwt_settings, monkeypatch):
    from airflow_provider_gcp_wif.token_service import TokenService

    monkeypatch.setenv("GCP_WORKLOAD_PROVIDER", JWT_PROVIDER)
    monkeypatch.setenv("GCP_WIF_FEDERATION", "jwt")
    token, expiry = TokenService.from_env().get_token()
    assert token and expiry.endswith("Z")
    assert [r.get("oidc_sub") for r in emulator.control.requests("sts")] == [emulator.info["role_arn"]]


def test_session_credentials_of_unknown_expiry_fall_back_to_the_shortest_jwt(aws_env):
    """A bare AWS_SESSION_TOKEN (botocore is not told when it expires) of a 900-s session: the wanted 3600 s is
    refused by AWS (SessionDurationEscalationException), the supplier then asks for 60 s and gets a JWT."""
    assumed = boto3.client("sts").assume_role(RoleArn=aws_env["role_arn"], RoleSessionName="bare",
                                              DurationSeconds=900)["Credentials"]
    session = boto3.session.Session(aws_access_key_id=assumed["AccessKeyId"],
                                    aws_secret_access_key=assumed["SecretAccessKey"],
                                    aws_session_token=assumed["SessionToken"], region_name=aws_env["aws_region"])
    supplier = Boto3Supplier(lambda: session, region=aws_env["aws_region"], identity_key="bare")
    assert supplier.credentials_expiry() is None
    claims = jwt_claims(WebIdentityTokenSupplier(supplier, _audience(aws_env), duration_seconds=3600)
                        .get_subject_token(None, None))
    assert claims["exp"] - claims["iat"] == 60


def test_a_refused_jwt_appears_in_no_error_traceback_or_log(emulator, aws_env, role_supplier, settings_for, caplog):
    import logging
    import traceback

    from airflow_provider_gcp_wif.chain import web_identity_token_supplier
    from airflow_provider_gcp_wif.credentials import get_credentials
    from airflow_provider_gcp_wif.transport import exchange_transport

    jwt_provider(emulator.control, aws_env, allowed_audiences=["https://example.test/other"])
    settings = settings_for(provider_id=JWT_PROVIDER, federation="jwt")
    supplier = role_supplier()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(WifExchangeError) as caught:
        get_credentials(settings, supplier).refresh(exchange_transport())
    token = web_identity_token_supplier(settings, supplier)._token
    assert token and caught.value.step == "sts_exchange"
    # botocore's own wire logging (DEBUG) prints every AWS answer, this JWT too: documented in docs/reliability.md.
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("botocore"))
    shown = "".join(traceback.format_exception(caught.value)) + logged
    assert token not in shown and token.split(".")[1] not in shown
    assert "The audience in ID Token" in str(caught.value)


def test_the_host_cache_never_hands_one_routes_token_to_the_other(emulator, aws_env, role_supplier, settings_for,
                                                                  jwt_settings, tmp_path):
    """Same AWS identity, same service account, one host cache directory: the sigv4 credentials do their own
    exchange after the jwt ones left a token, and each route's second process takes its own route's token. (The two
    routes need two providers here; that the route alone changes the key is pinned in test_jwt_route.py.)"""
    from airflow_provider_gcp_wif.credentials import WifCredentials
    from airflow_provider_gcp_wif.host_cache import HostTokenCache
    from airflow_provider_gcp_wif.transport import exchange_transport

    cache = HostTokenCache(str(tmp_path / "cache"))
    supplier = role_supplier()
    sigv4_settings = settings_for()

    def token(settings) -> str:
        credentials = WifCredentials(settings, supplier, host_cache=cache)  # a new process's view
        credentials.refresh(exchange_transport())
        return str(credentials.token)

    jwt_token = token(jwt_settings)
    sigv4_token = token(sigv4_settings)
    assert sigv4_token != jwt_token
    assert (token(jwt_settings), token(sigv4_settings)) == (jwt_token, sigv4_token)
    assert [("oidc_sub" in r) for r in emulator.control.requests("sts")] == [True, False]


def test_id_tokens_ride_on_the_jwt_routes_federated_token(emulator, aws_env, role_supplier, jwt_settings):
    from airflow_provider_gcp_wif.credentials import get_credentials
    from airflow_provider_gcp_wif.id_tokens import get_id_token

    credentials = get_credentials(jwt_settings, role_supplier())
    assert jwt_claims(get_id_token(credentials, "https://service.example.test"))["aud"] == \
        "https://service.example.test"
    assert [r.get("oidc_sub") for r in emulator.control.requests("sts")] == [aws_env["role_arn"]]
