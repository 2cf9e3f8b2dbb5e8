"""The exchange, end to end against the emulated clouds: real google-auth, real boto3, moto verifying signatures."""

from __future__ import annotations

import datetime
import json
import threading
import time
import urllib.parse

import google.auth._helpers
import google.auth.transport.requests
import pytest
import requests

from airflow_provider_gcp_wif.chain import build_chain
from airflow_provider_gcp_wif.credentials import WifCredentials, get_credentials
from airflow_provider_gcp_wif.errors import WifExchangeError
from airflow_provider_gcp_wif.refresh import utcnow
from tests.fixtures import wait_until

REQUEST = google.auth.transport.requests.Request()
#: How long the emulator holds an advisory refresh's IAM request while another caller asks for the token.
REFRESH_HELD_SECONDS = 20


def counts(emulator):
    c = emulator.control.counters()
    by_endpoint = c.get("endpoints", c)
    return by_endpoint.get("sts", 0), by_endpoint.get("iam.generateAccessToken", 0)


def headers_after(credentials):
    headers: dict[str, str] = {}
    credentials.before_request(REQUEST, "GET", "http://example.invalid/", headers)
    return headers


class SharedClock:
    """The test's clock, shared with the emulated clouds: real time plus an offset that only the test moves. The
    credentials decide their windows on it and the emulator issues, checks and expires tokens on it, so a test jumps
    to a moment of a token's life instead of sleeping until it. (google-auth's own validity checks, which the chain
    uses for the federated token, keep real time: that token lives an hour, far beyond any jump here.)"""

    def __init__(self, emulator) -> None:
        self.emulator = emulator
        self.offset = datetime.timedelta()

    def __call__(self) -> datetime.datetime:
        return utcnow() + self.offset

    def move_to(self, moment: datetime.datetime) -> None:
        self.offset = moment - utcnow()
        self.emulator.control.set_clock_offset(self.offset.total_seconds())


def list_bucket(emulator, token):
    url = f"{emulator.info['storage_host']}/storage/v1/b/{emulator.info['bucket']}/o"
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


# -- identities --------------------------------------------------------------------------------------------------


def test_assumed_role_impersonates_the_service_account_and_the_token_works_on_storage(emulator, settings_for, role_supplier):
    credentials = get_credentials(settings_for(), role_supplier())
    headers = headers_after(credentials)
    assert headers["authorization"].startswith("Bearer ")
    assert credentials.valid and credentials.expiry > utcnow()
    assert list_bucket(emulator, credentials.token).status_code == 200
    sts = emulator.control.requests("sts")
    assert len(sts) == 1 and sts[0]["status"] == 200
    assert "assumed-role/wif-role/" in json.dumps(sts[0])
    iam = emulator.control.requests("iam.generateAccessToken")
    assert len(iam) == 1 and iam[0]["status"] == 200


def test_static_keys_get_a_federated_token_for_direct_access(emulator, settings_for, user_supplier):
    credentials = get_credentials(settings_for(impersonation_chain=None), user_supplier())
    credentials.refresh(REQUEST)
    assert credentials.token and credentials.settings.service_account is None
    assert counts(emulator) == (1, 0)
    assert ":user/" in json.dumps(emulator.control.requests("sts")[0])


def test_static_keys_without_a_binding_are_told_the_exact_member_to_bind(emulator, settings_for, user_supplier, aws_env):
    credentials = get_credentials(settings_for(), user_supplier())
    with pytest.raises(WifExchangeError) as caught:
        credentials.refresh(REQUEST)
    error = caught.value
    assert error.step == "impersonation" and error.status == 403
    assert "Permission 'iam.serviceAccounts.getAccessToken' denied" in error.reason
    # A user (not an assumed role) is bound as a single principal whose subject is its ARN.
    expected_member = (f"principal://iam.googleapis.com/projects/{aws_env['project_number']}/locations/global/"
                       f"workloadIdentityPools/{aws_env['pool_id']}/subject/arn:aws:iam::{aws_env['aws_account_id']}:user/")
    assert expected_member in error.fix
    assert "roles/iam.workloadIdentityUser" in error.fix and "propagate" in error.fix


def test_assumed_role_without_a_binding_gets_the_principal_set_of_its_role(emulator, settings_for, role_supplier, aws_env):
    emulator.control.remove_bindings(aws_env["service_account"])
    with pytest.raises(WifExchangeError) as caught:
        get_credentials(settings_for(), role_supplier()).refresh(REQUEST)
    member = (f"principalSet://iam.googleapis.com/projects/{aws_env['project_number']}/locations/global/"
              f"workloadIdentityPools/{aws_env['pool_id']}/attribute.aws_role/"
              f"arn:aws:sts::{aws_env['aws_account_id']}:assumed-role/wif-role")
    assert f'--member="{member}"' in caught.value.fix
    assert f"add-iam-policy-binding {aws_env['service_account']}" in caught.value.fix


def test_expired_aws_session_is_reported_as_such(emulator, settings_for, role_supplier):
    supplier = role_supplier()
    frozen = supplier.get_aws_security_credentials(None, None)
    emulator.control.expire_aws_credentials(frozen.access_key_id)
    with pytest.raises(WifExchangeError) as caught:
        get_credentials(settings_for(), supplier).refresh(REQUEST)
    assert caught.value.step == "sts_exchange" and caught.value.code == "invalid_grant"
    assert "ExpiredToken" in caught.value.reason
    assert "expired" in caught.value.fix and "refresh" in caught.value.fix


def test_missing_aws_credentials_fail_at_the_aws_step(emulator, settings_for, monkeypatch):
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(WifExchangeError) as caught:
        get_credentials(settings_for(), Boto3Supplier.default_chain()).refresh(REQUEST)
    assert caught.value.step == "aws_credentials"
    assert "no AWS credentials" in caught.value.reason
    assert counts(emulator) == (0, 0)


# -- lifetimes, chains, scopes, quota project ----------------------------------------------------------------------


def test_lifetime_over_an_hour_without_org_policy_says_which_policy(emulator, settings_for, role_supplier):
    with pytest.raises(WifExchangeError) as caught:
        get_credentials(settings_for(lifetime_seconds=7200), role_supplier()).refresh(REQUEST)
    assert caught.value.step == "impersonation" and caught.value.status == 400
    assert "constraints/iam.allowServiceAccountCredentialLifetimeExtension" in caught.value.fix
    assert "7200" in caught.value.fix


def test_lifetime_over_an_hour_with_org_policy_is_granted(emulator, settings_for, role_supplier, aws_env):
    emulator.control.set_org_policy_lifetime_extension([aws_env["service_account"]])
    credentials = get_credentials(settings_for(lifetime_seconds="7200s"), role_supplier())
    credentials.refresh(REQUEST)
    remaining = (credentials.expiry - utcnow()).total_seconds()
    assert 7000 < remaining <= 7200


def test_impersonation_chain_goes_through_the_delegate(emulator, settings_for, role_supplier, aws_env):
    chain = f"{aws_env['service_account']},{aws_env['target_service_account']}"
    credentials = get_credentials(settings_for(impersonation_chain=chain), role_supplier())
    credentials.refresh(REQUEST)
    calls = emulator.control.requests("iam.generateAccessToken")
    assert len(calls) == 1 and aws_env["target_service_account"] in calls[0]["path"]
    assert calls[0]["status"] == 200


def test_broken_chain_names_each_hop_to_grant(emulator, settings_for, role_supplier, aws_env):
    emulator.control.remove_bindings(aws_env["target_service_account"])
    chain = f"{aws_env['service_account']},{aws_env['target_service_account']}"
    with pytest.raises(WifExchangeError) as caught:
        get_credentials(settings_for(impersonation_chain=chain), role_supplier()).refresh(REQUEST)
    fix = caught.value.fix
    assert caught.value.step == "impersonation"
    assert (f"add-iam-policy-binding {aws_env['target_service_account']} "
            f"--member=serviceAccount:{aws_env['service_account']} --role=roles/iam.serviceAccountTokenCreator") in fix


def test_requested_scopes_reach_generate_access_token_and_sts_gets_the_iam_scope(settings_for, role_supplier):
    scope = "https://www.googleapis.com/auth/devstorage.read_only"
    credentials = get_credentials(settings_for(scope=scope), role_supplier())
    inner = credentials.chain.final
    assert inner._target_scopes == [scope]
    # The federated token may call IAM Credentials and nothing else (google-auth's re-scoping of an impersonation's
    # source): never the narrow requested scope, never cloud-platform.
    assert credentials.chain.federated.scopes == ["https://www.googleapis.com/auth/iam"]
    assert credentials.chain.federated.wif.settings == credentials.settings
    credentials.refresh(REQUEST)
    assert credentials.token


def test_quota_project_is_sent_with_every_request(settings_for, role_supplier):
    credentials = get_credentials(settings_for(quota_project_id="billing-project"), role_supplier())
    assert headers_after(credentials)["x-goog-user-project"] == "billing-project"


def test_federated_token_lifetime_comes_from_sts(emulator, settings_for, role_supplier):
    emulator.control.set_token_ttl(sts=1800)
    credentials = get_credentials(settings_for(impersonation_chain=None), role_supplier())
    credentials.refresh(REQUEST)
    remaining = (credentials.expiry - utcnow()).total_seconds()
    assert 1700 < remaining <= 1800


# -- the audience is signed into every subject token -----------------------------------------------------------


def test_subject_token_signs_the_audience_header(settings_for, role_supplier):
    settings = settings_for()
    federated = build_chain(settings, role_supplier()).federated
    token = json.loads(urllib.parse.unquote(federated.retrieve_subject_token(REQUEST)))
    headers = {h["key"].lower(): h["value"] for h in token["headers"]}
    assert headers["x-goog-cloud-target-resource"] == settings.audience
    signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "x-goog-cloud-target-resource" in signed
    assert token["url"] == "https://sts.us-east-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"


def test_a_strict_provider_accepts_our_signed_subject_tokens(emulator, settings_for, role_supplier):
    emulator.control.set_provider(strict=True)
    credentials = get_credentials(settings_for(), role_supplier())
    credentials.refresh(REQUEST)
    assert credentials.token


def test_each_exchange_signs_a_fresh_subject_token(settings_for, role_supplier, monkeypatch):
    # google-auth's RequestSigner reads the time from google.auth._helpers.utcnow (X-Amz-Date has one-second
    # resolution): that third-party clock is stepped a second instead of sleeping one; our code is untouched.
    moments = iter([datetime.datetime(2030, 1, 2, 3, 4, 5), datetime.datetime(2030, 1, 2, 3, 4, 6)])
    federated = build_chain(settings_for(), role_supplier()).federated
    monkeypatch.setattr(google.auth._helpers, "utcnow", lambda: next(moments))
    first, second = (json.loads(urllib.parse.unquote(federated.retrieve_subject_token(REQUEST))) for _ in range(2))
    monkeypatch.undo()
    dates = [{h["key"].lower(): h["value"] for h in token["headers"]}["x-amz-date"] for token in (first, second)]
    assert dates == ["20300102T030405Z", "20300102T030406Z"], "each subject token is signed at its own time"
    assert first != second


# -- sharing and refreshing ------------------------------------------------------------------------------------


def test_twenty_hook_like_callers_share_one_exchange(emulator, settings_for, role_supplier):
    tokens = set()
    for _ in range(20):
        credentials = get_credentials(settings_for(), role_supplier())  # a new supplier each time, like new hooks
        tokens.add(headers_after(credentials)["authorization"])
    assert len(tokens) == 1
    assert counts(emulator) == (1, 1)


def test_different_settings_get_different_credentials(settings_for, role_supplier):
    a = get_credentials(settings_for(), role_supplier())
    b = get_credentials(settings_for(scope="https://www.googleapis.com/auth/devstorage.read_only"), role_supplier())
    assert a is not b


def test_thirty_two_threads_at_expiry_cause_one_refresh(emulator, settings_for, role_supplier):
    emulator.control.set_token_ttl(iam=4)
    clock = SharedClock(emulator)
    credentials = get_credentials(settings_for(), role_supplier(), clock=clock)
    first = headers_after(credentials)["authorization"]
    assert counts(emulator) == (1, 1)
    clock.move_to(credentials.expiry + datetime.timedelta(seconds=0.2))
    assert not credentials.valid
    barrier = threading.Barrier(32)
    seen: list[str] = []
    errors: list[BaseException] = []

    def call():
        try:
            barrier.wait()
            seen.append(headers_after(credentials)["authorization"])
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=call) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(seen) == 32 and len(set(seen)) == 1 and seen[0] != first
    sts, iam = counts(emulator)
    assert iam == 2, "one refresh for 32 threads"
    assert sts == 1, "the federated token was still valid and was reused"


def test_refresh_ahead_of_expiry_keeps_serving_the_valid_token_meanwhile(emulator, settings_for, role_supplier):
    emulator.control.set_token_ttl(iam=20)
    clock = SharedClock(emulator)
    credentials = get_credentials(settings_for(), role_supplier(), clock=clock)
    first = headers_after(credentials)["authorization"]
    # Advisory window = a quarter of the lifetime (5 s here): inside it, a caller refreshes, others are not blocked.
    clock.move_to(credentials.windows.advisory_at + datetime.timedelta(seconds=0.1))
    assert credentials.valid
    emulator.control.inject_faults("iam", kinds=["delay"], delay_seconds=REFRESH_HELD_SECONDS, count=1)
    refreshing = threading.Thread(target=headers_after, args=(credentials,))
    refreshing.start()
    try:
        # the refreshing thread's request is held at IAM now
        fired = wait_until(lambda: requests.get(emulator.info["control_url"] + "/faults", timeout=10).json()[0]["fired"],
                           30, poll=0.02)
        assert fired, "the refresh never reached IAM"
        assert credentials.refreshing
        started = time.monotonic()
        assert headers_after(credentials)["authorization"] == first
        assert time.monotonic() - started < REFRESH_HELD_SECONDS / 2, "a caller waited for the advisory refresh"
    finally:
        emulator.control.clear_faults()  # let the held request go
        refreshing.join(REFRESH_HELD_SECONDS + 30)
    second = headers_after(credentials)["authorization"]
    assert second != first and counts(emulator)[1] == 2


def test_advisory_refresh_failure_keeps_the_current_token(emulator, settings_for, role_supplier):
    emulator.control.set_token_ttl(iam=20)
    clock = SharedClock(emulator)
    credentials = get_credentials(settings_for(), role_supplier(), clock=clock)
    first = headers_after(credentials)["authorization"]
    clock.move_to(credentials.windows.advisory_at + datetime.timedelta(seconds=0.1))
    emulator.control.inject_faults("iam", statuses=[403])
    assert headers_after(credentials)["authorization"] == first


def test_transient_failures_are_retried_within_num_retries(emulator, settings_for, role_supplier):
    emulator.control.inject_faults("sts", statuses=[503, 500])
    emulator.control.inject_faults("iam", statuses=[429])
    credentials = WifCredentials(settings_for(num_retries=3), role_supplier(), retry_initial_delay=0.01)
    credentials.refresh(REQUEST)
    assert credentials.token
    assert [r["status"] for r in emulator.control.requests("sts")] == [503, 500, 200]


def test_transient_failure_past_the_retry_budget_is_marked_retryable(emulator, settings_for, role_supplier):
    emulator.control.inject_faults("sts", statuses=[503, 503])
    credentials = WifCredentials(settings_for(num_retries=1), role_supplier(), retry_initial_delay=0.01)
    with pytest.raises(WifExchangeError) as caught:
        credentials.refresh(REQUEST)
    assert caught.value.retryable and caught.value.step == "sts_exchange" and caught.value.status == 503
    assert "retry" in caught.value.fix


def test_permanent_errors_are_not_retried(emulator, settings_for, role_supplier, aws_env):
    emulator.control.remove_bindings(aws_env["service_account"])
    credentials = WifCredentials(settings_for(num_retries=5), role_supplier(), retry_initial_delay=0.01)
    with pytest.raises(WifExchangeError) as caught:
        credentials.refresh(REQUEST)
    assert not caught.value.retryable
    assert counts(emulator)[1] == 1
