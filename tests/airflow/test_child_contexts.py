"""Child-process credential contexts (`provide_gcp_credential_file_as_context`, `provide_authorized_gcloud`) are
isolated from each other and leave nothing behind: two threads, two AWS connections with different keys, a real
child process that reads its environment and authenticates with Google on its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import google.auth.transport.requests
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif import child_credentials
from tests.fixtures import wait_until

from .connections import gcs_hook, set_conn, wif_extra

pytestmark = pytest.mark.usefixtures("plugin_loaded")

AWS_SECRET_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

CHILD = textwrap.dedent("""
    import json, os, sys
    import google.auth, google.auth.transport.requests
    environment = dict(os.environ)
    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    session = google.auth.transport.requests.AuthorizedSession(credentials)
    response = session.get(os.environ["STORAGE_EMULATOR_HOST"] + "/storage/v1/b/" + sys.argv[1] + "/o")
    print(json.dumps({"status": response.status_code, "environment": environment}))
""")


def two_aws_connections(wif_env, monkeypatch):
    """gcp_a → aws_a (the trusted IAM user assuming wif-role); gcp_b → aws_b (another account's user, other keys)."""
    aws = {"region_name": wif_env["aws_region"], "endpoint_url": wif_env["aws_endpoint"]}
    set_conn(monkeypatch, "aws_a", "aws", {**aws, "role_arn": wif_env["role_arn"]},
             login=wif_env["aws_access_key_id"], password=wif_env["aws_secret_access_key"])
    set_conn(monkeypatch, "aws_b", "aws", aws,
             login=wif_env["untrusted_aws_access_key_id"], password=wif_env["untrusted_aws_secret_access_key"])
    set_conn(monkeypatch, "gcp_a", "gcp_wif", wif_extra(wif_env, aws_conn_id="aws_a"))
    set_conn(monkeypatch, "gcp_b", "gcp_wif", wif_extra(wif_env, aws_conn_id="aws_b"))


def waiting_at_the_lock(thread: threading.Thread, entered: threading.Event) -> None:
    """Until ``thread`` is inside the environment overlay (blocked at its lock, as it must be while another context
    is open) or has entered its context (which the caller's assertions then catch): an event, not a guessed sleep."""

    def at_the_lock_or_entered() -> bool:
        if entered.is_set():
            return True
        frame = sys._current_frames().get(thread.ident or 0)
        while frame is not None and frame.f_code is not child_credentials.patched_environ.__wrapped__.__code__:
            frame = frame.f_back
        return frame is not None

    assert wait_until(at_the_lock_or_entered, 30, poll=0.01), "B never reached the environment overlay"


def test_overlapping_contexts_in_two_threads_keep_identities_apart_and_leave_nothing(wif_env, emulator, monkeypatch):
    two_aws_connections(wif_env, monkeypatch)
    # A deployment's own AWS keys in the environment (a decoy identity): google-auth would prefer them to any
    # credential source, so a child must not see them, and they must be back afterwards.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADECOYDECOYDECOY1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "decoy-secret-of-the-deployment-0123456789")
    hook_a, hook_b = gcs_hook(gcp_conn_id="gcp_a"), gcs_hook(gcp_conn_id="gcp_b")
    secret_a = hook_a._gcp_wif.credentials().supplier.get_aws_security_credentials(None, None)
    secrets = {secret_a.secret_access_key, secret_a.session_token, wif_env["aws_secret_access_key"],
               wif_env["untrusted_aws_secret_access_key"], wif_env["untrusted_aws_access_key_id"],
               "decoy-secret-of-the-deployment-0123456789"}
    snapshot = dict(os.environ)

    a_open, b_trying, b_entered, release_b = (threading.Event() for _ in range(4))
    b_errors: list[BaseException] = []

    def context_b() -> None:
        try:
            a_open.wait(30)
            b_trying.set()
            with hook_b.provide_gcp_credential_file_as_context():
                b_entered.set()
                release_b.wait(30)
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            b_errors.append(err)

    thread_b = threading.Thread(target=context_b)
    thread_b.start()
    try:
        with hook_a.provide_gcp_credential_file_as_context() as path_a:
            a_open.set()
            b_trying.wait(30)
            waiting_at_the_lock(thread_b, b_entered)  # B's context is being opened meanwhile
            parent_during = dict(os.environ)
            emulator.control.clear_log()
            child = subprocess.run([sys.executable, "-c", CHILD, wif_env["bucket"]], capture_output=True, text=True,
                                   timeout=120)
            sts = emulator.control.requests("sts")
            b_entered_while_a_was_open = b_entered.is_set()
    finally:
        release_b.set()
        thread_b.join(60)
    assert not b_errors and b_entered.is_set()

    assert child.returncode == 0, child.stderr
    answer = json.loads(child.stdout)
    child_env = answer["environment"]
    assert child_env["GOOGLE_APPLICATION_CREDENTIALS"] == path_a
    assert [name for name in AWS_SECRET_NAMES if name in child_env] == []
    assert not secrets & set(child_env.values()), "a child saw an AWS secret in its environment"
    assert not secrets & set(parent_during.values()), "an AWS secret was put into os.environ"
    # A's child authenticated as A (the assumed wif-role of the trusted account), never as B or the decoy.
    assert answer["status"] == 200
    assert sts and all(f"arn:aws:sts::{wif_env['aws_account_id']}:assumed-role/wif-role/" in r["principal"]
                       for r in sts), [r["principal"] for r in sts]
    assert not b_entered_while_a_was_open, "B's context opened while A's was open"

    assert dict(os.environ) == snapshot


def test_authorized_gcloud_context_leaves_the_environment_exactly_as_it_was(wif_env, tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "gcloud"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport os, sys\nassert 'AWS_SECRET_ACCESS_KEY' not in os.environ\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-of-the-deployment")
    monkeypatch.delenv("CLOUDSDK_CONFIG", raising=False)
    snapshot = dict(os.environ)
    with gcs_hook(gcp_conn_id="gcp_wif_default").provide_authorized_gcloud():
        assert "AWS_SESSION_TOKEN" not in os.environ and "CLOUDSDK_CONFIG" in os.environ
    assert dict(os.environ) == snapshot


# -- the environment overlay itself: any order of opening and closing on one thread ------------------------------

KEYS = ("GCP_WIF_TEST_X", "GCP_WIF_TEST_Y", "GCP_WIF_TEST_Z")
overlays = st.dictionaries(st.sampled_from(KEYS), st.none() | st.sampled_from(["1", "2", ""]), min_size=1)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(before=st.dictionaries(st.sampled_from(KEYS), st.sampled_from(["a", "b"])),
       opened=st.lists(overlays, min_size=1, max_size=5), close_order=st.randoms(use_true_random=False))
def test_overlays_closed_in_any_order_restore_exactly(before, opened, close_order):
    """Oracle: while overlays are open, each variable has the value of the last open overlay that sets it (else
    its value before); once all are closed, the environment is exactly the one before."""
    for key in KEYS:
        os.environ.pop(key, None)
    os.environ.update(before)
    snapshot = dict(os.environ)
    contexts = []
    for values in opened:
        context = child_credentials.patched_environ(values)
        context.__enter__()
        contexts.append((context, values))
    order = list(range(len(contexts)))
    close_order.shuffle(order)
    still_open = list(range(len(contexts)))
    try:
        for index in order:
            contexts[index][0].__exit__(None, None, None)
            still_open.remove(index)
            for key in KEYS:
                expected = before.get(key)
                for open_index in still_open:
                    expected = contexts[open_index][1].get(key, expected)
                assert os.environ.get(key) == expected
        assert dict(os.environ) == snapshot
    finally:
        for key in KEYS:
            os.environ.pop(key, None)


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="the Google Cloud CLI is not installed")
def test_real_gcloud_gets_a_token_through_the_loopback_credential_source(wif_env, emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("CLOUDSDK_AUTH_DISABLE_CREDENTIALS_FILE_VALIDATION", "1")
    # `gcloud config set core/project` looks the project up: at the emulator, never on the internet.
    monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER", wif_env["crm_endpoint"] + "/")
    hook = gcs_hook(gcp_conn_id="gcp_wif_default")
    with hook.provide_authorized_gcloud():
        assert not set(AWS_SECRET_NAMES) & set(os.environ)
        token = subprocess.run(["gcloud", "auth", "print-access-token"], capture_output=True, text=True, timeout=180)
    assert token.returncode == 0, token.stderr
    assert emulator.control.requests("iam.generateAccessToken"), "gcloud exchanged through the emulator"


def _served_access_key_id(path: str) -> str:
    """The AWS access key id the credential file's loopback endpoint serves a child (as google-auth's aws1 asks)."""
    import requests

    from airflow_provider_gcp_wif.child_credentials import ENDPOINT_ROLE_NAME

    with open(path) as handle:
        url = json.load(handle)["credential_source"]["url"]
    return str(requests.get(f"{url}/{ENDPOINT_ROLE_NAME}", timeout=10).json()["AccessKeyId"])


def test_every_hook_of_one_connection_serves_its_children_the_process_wide_aws_session(wif_env, emulator,
                                                                                        monkeypatch):
    """Two hooks of one connection (two operators in a task, a hook per call) share the process's credentials, and
    with them one AWS session: their child processes get that session's keys (one AssumeRole for the process),
    not a new AssumeRole per hook."""
    set_conn(monkeypatch, "aws_shared", "aws",
             {"region_name": wif_env["aws_region"], "endpoint_url": wif_env["aws_endpoint"],
              "role_arn": wif_env["role_arn"]},
             login=wif_env["aws_access_key_id"], password=wif_env["aws_secret_access_key"])
    set_conn(monkeypatch, "gcp_shared", "gcp_wif", wif_extra(wif_env, aws_conn_id="aws_shared"))
    first, second = gcs_hook(gcp_conn_id="gcp_shared"), gcs_hook(gcp_conn_id="gcp_shared")
    first.get_credentials().refresh(google.auth.transport.requests.Request())
    shared = first._gcp_wif.credentials().supplier.get_aws_security_credentials(None, None).access_key_id
    served = []
    for hook in (first, second):
        with hook.provide_gcp_credential_file_as_context() as path:
            served.append(_served_access_key_id(path))
    assert served == [shared, shared]
