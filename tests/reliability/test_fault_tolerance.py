"""Transient Google failures are ridden out within a bounded retry budget; permanent ones fail at once, naming the
step and the fix; AWS-side failures are reported as AWS failures. Real google-auth and botocore paths throughout,
faults injected by the emulator.

The retry budget for the 200-request run (``NUM_RETRIES``) is computed, not guessed. A token request needs two
successful hops (STS, then generateAccessToken; google-auth keeps a successful STS answer while IAM is retried).
Every attempt of the exchange makes one request at the first unfinished hop, and each request fails independently
with probability at most p = 0.3 (a quarter of the injected faults are mere delays and succeed, so the real rate is
0.225; 0.3 is the bound). The request fails for good when more than N failures come before the second success:

    P(fail) = P(at most one success in the first N + 2 requests) = p^(N+2) + (N+2)(1-p) p^(N+1)

For 200 independent requests to succeed with probability ≥ 1 - 10^-6 we need 200·P(fail) ≤ 10^-6, i.e.
P(fail) ≤ 5·10^-9: N = 17 gives 5.1·10^-9 (just over), N = 18 gives 1.6·10^-9. ``NUM_RETRIES = 18`` (the
connection allows up to 20). With the fault RNG seeded the run is also exactly repeatable; the bound says it would
pass for (almost) any seed, and the test records the worst request it actually saw.
"""

from __future__ import annotations

import datetime

import pytest
from botocore.credentials import RefreshableCredentials

from airflow_provider_gcp_wif.credentials import WifCredentials
from airflow_provider_gcp_wif.errors import WifExchangeError
from airflow_provider_gcp_wif.supplier import Boto3Supplier
from tests.fixtures import endpoint_counts

TOKEN_REQUESTS = 200
FAULT_RATE = 0.3
NUM_RETRIES = 18
FAULT_KINDS = ["status", "delay", "reset", "malformed"]

pytestmark = pytest.mark.usefixtures("without_airflows_masker")





def failure_probability(p: float, retries: int) -> float:
    """P(a two-hop exchange fails with ``retries`` retries, each request failing with probability ``p``)."""
    return p ** (retries + 2) + (retries + 2) * (1 - p) * p ** (retries + 1)


def test_the_retry_budget_makes_two_hundred_requests_at_thirty_percent_faults_reliable():
    assert TOKEN_REQUESTS * failure_probability(FAULT_RATE, NUM_RETRIES) <= 1e-6
    assert TOKEN_REQUESTS * failure_probability(FAULT_RATE, NUM_RETRIES - 2) > 1e-6, "the budget is not oversized"


def test_two_hundred_token_requests_succeed_through_thirty_percent_transient_faults(
    emulator, settings_for, role_supplier, google_request
):
    for endpoint, seed in (("sts", 6), ("iam.generateAccessToken", 7)):
        emulator.control.inject_faults(endpoint, statuses=[429, 500, 503], rate=FAULT_RATE, kinds=FAULT_KINDS,
                                       delay_seconds=0.02, seed=seed)
    settings = settings_for(num_retries=NUM_RETRIES)
    supplier = role_supplier()
    tokens = []
    for _ in range(TOKEN_REQUESTS):
        credentials = WifCredentials(settings, supplier, retry_initial_delay=0.01)  # a fresh, whole exchange
        credentials.force_refresh(google_request)
        tokens.append(credentials.token)
    assert len(set(tokens)) == TOKEN_REQUESTS and all(tokens)

    log = emulator.control.requests("sts") + emulator.control.requests("iam.generateAccessToken")
    log.sort(key=lambda entry: entry["id"])
    faults = {(entry["endpoint"], entry["fault"]) for entry in log if entry["fault"]}
    for endpoint in ("sts", "iam.generateAccessToken"):
        for kind in FAULT_KINDS:
            assert (endpoint, kind) in faults, f"no {kind} fault was injected on {endpoint}"
    failed_statuses = {entry["status"] for entry in log if entry["fault"] == "status"}
    assert failed_statuses == {429, 500, 503}

    # Bounded: split the log into token requests (each ends with a good generateAccessToken answer) and count the
    # failed requests in each; the exchange may spend at most NUM_RETRIES of them.
    failures_per_token, failures = [], 0
    for entry in log:
        good = entry["status"] == 200 and entry["fault"] in (None, "delay")
        if not good:
            failures += 1
        elif entry["endpoint"] == "iam.generateAccessToken":
            failures_per_token.append(failures)
            failures = 0
    assert len(failures_per_token) == TOKEN_REQUESTS
    assert max(failures_per_token) <= NUM_RETRIES
    assert sum(failures_per_token) > 0.2 * TOKEN_REQUESTS, "faults really were in the way"
    assert len(log) == 2 * TOKEN_REQUESTS + sum(failures_per_token), "no request beyond the retries"


def test_the_last_of_the_tokens_obtained_through_faults_works_on_storage(emulator, settings_for, role_supplier,
                                                                         google_request):
    import requests

    emulator.control.inject_faults("*", kinds=["reset", "malformed", "status"], statuses=[503], count=6)
    credentials = WifCredentials(settings_for(num_retries=NUM_RETRIES), role_supplier(), retry_initial_delay=0.01)
    credentials.force_refresh(google_request)
    url = f"{emulator.info['storage_host']}/storage/v1/b/{emulator.info['bucket']}/o"
    answer = requests.get(url, headers={"Authorization": f"Bearer {credentials.token}"}, timeout=10)
    assert answer.status_code == 200


# -- permanent answers are never retried -----------------------------------------------------------------------

PERMANENT = [
    # (hop, injected status, step, a fragment of the fix)
    ("sts", 400, "sts_exchange", "gcp-wif doctor"),
    ("sts", 401, "sts_exchange", "gcp-wif doctor"),
    ("sts", 403, "sts_exchange", "gcp-wif doctor"),
    ("iam.generateAccessToken", 400, "impersonation", "impersonation_chain holds plain service-account emails"),
    ("iam.generateAccessToken", 401, "impersonation", "federated token was missing or expired"),
    ("iam.generateAccessToken", 403, "impersonation", "roles/iam.workloadIdentityUser"),
]


@pytest.mark.parametrize(("hop", "status", "step", "fix"), PERMANENT, ids=[f"{h}-{s}" for h, s, _, _ in PERMANENT])
def test_client_errors_are_not_retried_and_name_the_step_and_fix(
    emulator, settings_for, role_supplier, google_request, hop, status, step, fix
):
    emulator.control.inject_faults(hop, statuses=[status])
    credentials = WifCredentials(settings_for(num_retries=5), role_supplier(), retry_initial_delay=0.01)
    with pytest.raises(WifExchangeError) as caught:
        credentials.force_refresh(google_request)
    error = caught.value
    assert error.step == step and error.status == status and not error.retryable
    assert fix in error.fix
    assert len(emulator.control.requests(hop)) == 1, "a 4xx answer was retried"


def test_a_disabled_provider_is_reported_once_with_the_re_enable_command(emulator, settings_for, role_supplier,
                                                                        google_request):
    emulator.control.set_provider(disabled=True)
    credentials = WifCredentials(settings_for(num_retries=5), role_supplier(), retry_initial_delay=0.01)
    with pytest.raises(WifExchangeError) as caught:
        credentials.force_refresh(google_request)
    assert caught.value.step == "sts_exchange" and caught.value.code == "invalid_target"
    assert "--no-disabled" in caught.value.fix
    assert endpoint_counts(emulator) == (1, 0)


def test_retries_exhausted_on_a_flapping_endpoint_fail_with_a_retryable_error(emulator, settings_for,
                                                                               role_supplier, google_request):
    emulator.control.inject_faults("iam", statuses=[503], rate=1.0)
    credentials = WifCredentials(settings_for(num_retries=3), role_supplier(), retry_initial_delay=0.01)
    with pytest.raises(WifExchangeError) as caught:
        credentials.force_refresh(google_request)
    assert caught.value.step == "impersonation" and caught.value.retryable and "retry" in caught.value.fix
    assert endpoint_counts(emulator) == (1, 4), "one STS exchange kept, four generateAccessToken attempts"


# -- the AWS side --------------------------------------------------------------------------------------------------


def refreshable_session(region: str, refresh):
    """A boto3 session over botocore ``RefreshableCredentials`` that are already past their expiry, so the next
    use must call ``refresh`` (what botocore does for an assumed role whose hour is up)."""
    import boto3
    import botocore.session

    expired = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)).isoformat()
    metadata = {"access_key": "ASIAEXPIREDEXPIRED00", "secret_key": "expired", "token": "expired",
                "expiry_time": expired}
    core = botocore.session.Session()
    core._credentials = RefreshableCredentials.create_from_metadata(metadata, refresh, "assume-role")
    return boto3.session.Session(botocore_session=core, region_name=region)


def test_a_failed_aws_credential_refresh_is_an_aws_credentials_error(emulator, aws_env, settings_for,
                                                                     google_request):
    import boto3

    def refresh_with_a_rotated_key():
        sts = boto3.client("sts", region_name=aws_env["aws_region"], aws_access_key_id=aws_env["aws_access_key_id"],
                           aws_secret_access_key="rotated-away-secret")
        answer = sts.assume_role(RoleArn=aws_env["role_arn"], RoleSessionName="refresh")["Credentials"]
        return {"access_key": answer["AccessKeyId"], "secret_key": answer["SecretAccessKey"],
                "token": answer["SessionToken"], "expiry_time": answer["Expiration"].isoformat()}

    supplier = Boto3Supplier(lambda: refreshable_session(aws_env["aws_region"], refresh_with_a_rotated_key),
                             identity_key="refresh-fails", description="AWS connection 'aws_broken'")
    credentials = WifCredentials(settings_for(num_retries=5), supplier, retry_initial_delay=0.01)
    with pytest.raises(WifExchangeError) as caught:
        credentials.force_refresh(google_request)
    error = caught.value
    assert error.step == "aws_credentials" and not error.retryable
    assert "AWS connection 'aws_broken'" in error.reason and "SignatureDoesNotMatch" in error.reason
    assert "aws sts get-caller-identity" in error.fix
    assert endpoint_counts(emulator) == (0, 0), "nothing was sent to Google"
