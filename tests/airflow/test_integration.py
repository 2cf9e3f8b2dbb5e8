"""Stock Google hooks with a `gcp_wif` connection, in process: sync, async and subprocess paths; other connections
untouched; bad settings fail before any request; secrets reach Airflow's masker."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from airflow_provider_gcp_wif import credentials as wif_credentials
from airflow_provider_gcp_wif import integration
from airflow_provider_gcp_wif.errors import WifConfigError
from tests.airflow_process import airflow_redact

from .connections import _service_account_key, gcs_hook, set_conn, wif_extra

pytestmark = pytest.mark.usefixtures("plugin_loaded")


# -- sync hooks --------------------------------------------------------------------------------------------------


def test_stock_gcs_hook_lists_objects_with_the_wif_connection(wif_env, emulator):
    hook = gcs_hook(gcp_conn_id="gcp_wif_default")
    hook.upload(bucket_name=wif_env["bucket"], object_name="a/b.txt", data="hello")
    assert hook.list(wif_env["bucket"], prefix="a/") == ["a/b.txt"]
    credentials, project = hook.get_credentials_and_project_id()
    assert isinstance(credentials, wif_credentials.WifCredentials)
    assert project == wif_env["project_id"]
    storage = emulator.control.requests("storage")
    assert storage and {r["principal"] for r in storage} == {wif_env["service_account"]}
    assert len(emulator.control.requests("sts")) == 1


def test_building_credentials_does_no_network_io(wif_env, emulator):
    hook = gcs_hook(gcp_conn_id="gcp_wif_default")
    hook.get_credentials_and_project_id()
    assert emulator.control.requests() == []


def test_many_hooks_in_one_process_share_one_exchange(wif_env, emulator):
    for _ in range(10):
        hook = gcs_hook(gcp_conn_id="gcp_wif_default")
        hook.exists(wif_env["bucket"], "nothing-here")
    assert len(emulator.control.requests("sts")) == 1
    assert len(emulator.control.requests("iam.generateAccessToken")) == 1


def test_operator_impersonation_chain_replaces_the_connections(wif_env, emulator):
    target = wif_env["target_service_account"]
    emulator.control.set_bucket_iam(wif_env["bucket"], "roles/storage.objectViewer", [f"serviceAccount:{target}"])
    hook = gcs_hook(gcp_conn_id="gcp_wif_default", impersonation_chain=[wif_env["service_account"], target])
    hook.list(wif_env["bucket"])
    assert target in emulator.control.requests("iam.generateAccessToken")[0]["path"]
    assert {r["principal"] for r in emulator.control.requests("storage")} == {target}


def test_operator_quota_project_is_sent(wif_env):
    import inspect

    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    if "quota_project_id" not in inspect.signature(GoogleBaseHook.__init__).parameters:
        pytest.skip("this Google provider's GoogleBaseHook takes no quota_project_id (older than MWAA 3.3's 22.x)")
    hook = GoogleBaseHook(gcp_conn_id="gcp_wif_default", quota_project_id="billing-project-1")
    credentials, _ = hook.get_credentials_and_project_id()
    assert credentials.quota_project_id == "billing-project-1"


def test_a_bad_setting_fails_the_hook_before_any_request(wif_env, emulator, monkeypatch):
    set_conn(monkeypatch, "gcp_wif_bad", "gcp_wif", wif_extra(wif_env, project_number="wif-demo-project"))
    with pytest.raises(WifConfigError) as caught:
        gcs_hook(gcp_conn_id="gcp_wif_bad")
    assert caught.value.field == "project_number" and caught.value.conn_id == "gcp_wif_bad"
    assert emulator.control.requests() == []


def test_a_foreign_endpoint_is_refused_even_if_the_connection_asks(wif_env, emulator, monkeypatch):
    set_conn(monkeypatch, "gcp_wif_evil", "gcp_wif", wif_extra(wif_env, sts_endpoint="https://sts.attacker.example/v1/token"))
    with pytest.raises(WifConfigError) as caught:
        gcs_hook(gcp_conn_id="gcp_wif_evil")
    assert caught.value.field == "sts_endpoint"


def test_connection_given_as_a_uri(wif_env, emulator, monkeypatch):
    from urllib.parse import urlencode

    extra = wif_extra(wif_env)
    monkeypatch.setenv("AIRFLOW_CONN_GCP_WIF_URI", "gcp-wif://?" + urlencode(extra))
    hook = gcs_hook(gcp_conn_id="gcp_wif_uri")
    assert isinstance(hook.get_credentials_and_project_id()[0], wif_credentials.WifCredentials)
    assert hook.list(wif_env["bucket"]) == []


def test_legacy_prefixed_extras_work(wif_env, emulator, monkeypatch):
    extra = {f"extra__gcp_wif__{k}": v for k, v in wif_extra(wif_env).items()}
    set_conn(monkeypatch, "gcp_wif_legacy", "gcp_wif", extra)
    assert gcs_hook(gcp_conn_id="gcp_wif_legacy").list(wif_env["bucket"]) == []


# -- other connections behave exactly as before ------------------------------------------------------------------


def test_google_cloud_platform_connection_is_untouched(wif_env, monkeypatch):
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    set_conn(monkeypatch, "gcp_keyed", "google_cloud_platform",
             {"keyfile_dict": json.dumps(_service_account_key()), "project": "keyed-project",
              "impersonation_chain": ""})
    hook = GoogleBaseHook(gcp_conn_id="gcp_keyed")
    assert integration.binding_of(hook) is None
    credentials, project = hook.get_credentials_and_project_id()
    stock_hook = GoogleBaseHook(gcp_conn_id="gcp_keyed")
    stock_credentials, stock_project = GoogleBaseHook.get_credentials_and_project_id.__wrapped__(stock_hook)
    assert type(credentials) is type(stock_credentials)
    assert credentials.service_account_email == stock_credentials.service_account_email == "keyed@keyed-project.iam.gserviceaccount.com"
    assert project == stock_project == "keyed-project"
    with hook.provide_gcp_credential_file_as_context() as path, open(path) as handle:
        assert json.load(handle)["type"] == "service_account"


def test_anonymous_connection_is_untouched(wif_env, monkeypatch):
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
    from google.auth.credentials import AnonymousCredentials

    set_conn(monkeypatch, "gcp_anon", "google_cloud_platform", {"is_anonymous": True, "project": "anon-project"})
    credentials, project = GoogleBaseHook(gcp_conn_id="gcp_anon").get_credentials_and_project_id()
    assert isinstance(credentials, AnonymousCredentials) and project == "anon-project"


def test_a_google_connection_with_a_look_alike_key_is_untouched(wif_env, monkeypatch):
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    set_conn(monkeypatch, "gcp_lookalike", "google_cloud_platform", {"is_anonymous": True, "audience": "x"})
    hook = GoogleBaseHook(gcp_conn_id="gcp_lookalike")
    assert integration.binding_of(hook) is None


def test_integration_is_idempotent():
    from airflow.providers.google.common.hooks import base_google

    from airflow_provider_gcp_wif import extension

    wrapped = base_google.GoogleBaseHook.get_credentials_and_project_id
    extension.activate()
    extension.extend(base_google)
    assert base_google.GoogleBaseHook.get_credentials_and_project_id is wrapped
    assert not hasattr(wrapped.__wrapped__, "__wrapped__")


# -- async hooks -------------------------------------------------------------------------------------------------


def test_async_hook_token_comes_from_the_exchange_off_the_event_loop(wif_env, emulator):
    from airflow.providers.google.cloud.hooks.gcs import GCSAsyncHook

    async def run():
        hook = GCSAsyncHook(gcp_conn_id="gcp_wif_default")
        token = await hook.get_token()
        requests_before_get = len(emulator.control.requests())
        value = await token.get()
        return requests_before_get, value

    before, value = asyncio.run(run())
    assert before == 0, "get_token() (on the event loop) made no request"
    assert value
    assert len(emulator.control.requests("sts")) == 1


# -- subprocess and gcloud paths ---------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import json, os, sys
    import google.auth, google.auth.transport.requests, requests
    assert "airflow_provider_gcp_wif" not in sys.modules
    credentials, project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    session = google.auth.transport.requests.AuthorizedSession(credentials)
    response = session.get(os.environ["STORAGE_EMULATOR_HOST"] + "/storage/v1/b/" + sys.argv[1] + "/o")
    print(json.dumps({"status": response.status_code, "type": type(credentials).__name__,
                      "modules": sorted(m for m in sys.modules if m.startswith("airflow_provider"))}))
""")


def test_child_process_authenticates_with_the_credential_file_alone(wif_env, emulator):
    hook = gcs_hook(gcp_conn_id="gcp_wif_default")
    with hook.provide_gcp_credential_file_as_context() as path:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        directory_mode = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
        with open(path) as handle:
            config = json.load(handle)
        assert os.environ["GOOGLE_APPLICATION_CREDENTIALS"] == path
        child = subprocess.run([sys.executable, "-c", CHILD, wif_env["bucket"]], capture_output=True, text=True,
                               timeout=120, env=dict(os.environ))
    assert child.returncode == 0, child.stderr
    answer = json.loads(child.stdout)
    assert answer == {"status": 200, "type": "Credentials", "modules": []}
    assert mode == 0o600 and directory_mode == 0o700
    assert config["type"] == "external_account" and config["credential_source"]["environment_id"] == "aws1"
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in os.environ and "AWS_SECRET_ACCESS_KEY" not in os.environ
    storage = emulator.control.requests("storage")
    assert storage[-1]["principal"] == wif_env["service_account"]


def test_child_process_cannot_be_given_a_delegate_chain_and_says_what_to_do(wif_env, emulator, monkeypatch):
    chain = f"{wif_env['service_account']},{wif_env['target_service_account']}"
    set_conn(monkeypatch, "gcp_wif_chain", "gcp_wif", wif_extra(wif_env, impersonation_chain=chain))
    hook = gcs_hook(gcp_conn_id="gcp_wif_chain")
    with pytest.raises(WifConfigError) as caught, hook.provide_gcp_credential_file_as_context():
        pass
    assert caught.value.field == "impersonation_chain" and "bind the federated identity" in caught.value.fix
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in os.environ and "AWS_SECRET_ACCESS_KEY" not in os.environ


def test_async_service_file_context_gives_the_same_file(wif_env):
    from airflow.providers.google.cloud.hooks.gcs import GCSAsyncHook

    async def run():
        hook = GCSAsyncHook(gcp_conn_id="gcp_wif_default")
        with await hook.service_file_as_context() as path, open(path) as handle:
            return json.load(handle)["type"]

    assert asyncio.run(run()) == "external_account"


def test_authorized_gcloud_logs_in_with_the_credential_file(wif_env, tmp_path, monkeypatch):
    record = tmp_path / "gcloud-calls.jsonl"
    fake = tmp_path / "bin" / "gcloud"
    fake.parent.mkdir()
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, sys
        cred = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--cred-file=")]
        with open({str(record)!r}, "a") as out:
            out.write(json.dumps({{"argv": sys.argv[1:], "config": os.environ.get("CLOUDSDK_CONFIG"),
                                   "cred_type": json.load(open(cred[0]))["type"] if cred else None}}) + "\\n")
    """))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    hook = gcs_hook(gcp_conn_id="gcp_wif_default")
    with hook.provide_authorized_gcloud():
        config_dir = os.environ["CLOUDSDK_CONFIG"]
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert calls[0]["argv"][:2] == ["auth", "login"] and calls[0]["cred_type"] == "external_account"
    assert calls[1]["argv"] == ["config", "set", "core/project", wif_env["project_id"]]
    assert calls[0]["config"] == config_dir and not os.path.exists(config_dir)


# -- the Test button and the masker ------------------------------------------------------------------------------


def test_test_connection_says_who_this_is_on_aws_and_google(wif_env):
    from airflow_provider_gcp_wif.hooks.gcp_wif import GcpWifHook

    ok, message = GcpWifHook().test_connection()
    assert ok, message
    assert message == f"arn:aws:sts::{wif_env['aws_account_id']}:assumed-role/wif-role/airflow_aws_default → {wif_env['service_account']}"


def test_test_connection_reports_the_failed_step_and_fix(wif_env, emulator):
    from airflow_provider_gcp_wif.hooks.gcp_wif import GcpWifHook

    emulator.control.remove_bindings(wif_env["service_account"])
    ok, message = GcpWifHook().test_connection()
    assert not ok
    assert message.startswith("impersonation: ") and "Permission 'iam.serviceAccounts.getAccessToken' denied" in message
    assert "Fix: `gcloud iam service-accounts add-iam-policy-binding" in message
    assert "attribute.aws_role/arn:aws:sts::" in message


def test_minted_tokens_are_registered_with_the_secrets_masker(wif_env):
    redact = airflow_redact()
    hook = gcs_hook(gcp_conn_id="gcp_wif_default")
    hook.list(wif_env["bucket"])
    credentials, _ = hook.get_credentials_and_project_id()
    assert redact(f"token={credentials.token}") == "token=***"


def test_plugin_import_is_cheap_and_extends_on_first_import():
    code = textwrap.dedent("""
        import sys, time
        import airflow
        start = time.perf_counter()
        import airflow_provider_gcp_wif.plugin
        elapsed = time.perf_counter() - start
        heavy = [m for m in ("boto3", "botocore", "google.auth", "googleapiclient",
                             "airflow.providers.google.common.hooks.base_google") if m in sys.modules]
        from airflow.providers.google.cloud.hooks.gcs import GCSHook
        from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
        print(heavy, GoogleBaseHook.__dict__.get("_gcp_wif_extended"), elapsed < 1.0)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # The last line: the plugin's one INFO line at load (test_plugin_load_line.py) may go to stdout before it.
    assert result.stdout.strip().splitlines()[-1] == "[] True True"


def test_entry_points_are_registered():
    from importlib.metadata import entry_points

    plugins = {ep.name: ep.value for ep in entry_points(group="airflow.plugins")}
    providers = {ep.value for ep in entry_points(group="apache_airflow_provider")}
    assert plugins["gcp_wif"] == "airflow_provider_gcp_wif.plugin:GcpWifPlugin"
    assert "airflow_provider_gcp_wif.provider_info:get_provider_info" in providers
