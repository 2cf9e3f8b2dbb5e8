"""A task that runs for hours keeps working: Google tokens of a few minutes are refreshed ahead of expiry and
assumed-role AWS credentials that expire are replaced by botocore's own refresh, with no authentication failure.

Hours pass in seconds: one simulated clock drives the emulator (``set_clock_offset``), google-auth
(``google.auth._helpers.utcnow``: expiry of the federated token, the ``x-amz-date`` of each signed subject token),
:class:`WifCredentials` (``clock=``) and botocore's ``RefreshableCredentials`` (``time_fetcher``). AWS credentials
whose simulated expiry has passed are expired in emulated AWS too, so signing with a stale key fails the exchange.
"""

from __future__ import annotations

import datetime
import itertools

import boto3
import botocore.session
import google.auth._helpers
import pytest
import requests
from botocore.credentials import RefreshableCredentials

from airflow_provider_gcp_wif.credentials import WifCredentials
from airflow_provider_gcp_wif.supplier import Boto3Supplier

pytestmark = pytest.mark.usefixtures("without_airflows_masker")

TASK_HOURS = 6
STEP_SECONDS = 90
GOOGLE_TOKEN_SECONDS = 300  # generateAccessToken tokens of five minutes ...
FEDERATED_TOKEN_SECONDS = 600  # ... from federated tokens of ten
AWS_ROLE_SECONDS = 3600  # assumed-role credentials of an hour (botocore refreshes 15 min ahead)


class SimulatedClock:
    """Real time plus an offset that the test moves forward; naive UTC, like google-auth's clock."""

    def __init__(self, emulator) -> None:
        self.emulator = emulator
        self.offset = 0.0

    def __call__(self) -> datetime.datetime:
        real = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        return real + datetime.timedelta(seconds=self.offset)

    def aware(self) -> datetime.datetime:
        return self().replace(tzinfo=datetime.timezone.utc)

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self.emulator.control.set_clock_offset(self.offset)


class ExpiringRole:
    """The fixture role assumed with the static keys, reported to botocore with a simulated one-hour expiry; the
    keys it handed out are expired in emulated AWS once that hour has passed."""

    def __init__(self, aws_env, clock: SimulatedClock) -> None:
        self.aws_env = aws_env
        self.clock = clock
        self.issued: list[tuple[str, datetime.datetime]] = []
        self.expired: set[str] = set()
        self._sessions = itertools.count(1)

    def refresh(self) -> dict[str, str]:
        sts = boto3.client("sts", region_name=self.aws_env["aws_region"])
        name = f"long-task-{next(self._sessions)}"
        answer = sts.assume_role(RoleArn=self.aws_env["role_arn"], RoleSessionName=name)["Credentials"]
        expiry = self.clock.aware() + datetime.timedelta(seconds=AWS_ROLE_SECONDS)
        self.issued.append((answer["AccessKeyId"], expiry))
        return {"access_key": answer["AccessKeyId"], "secret_key": answer["SecretAccessKey"],
                "token": answer["SessionToken"], "expiry_time": expiry.isoformat()}

    def expire_outdated(self) -> None:
        now = self.clock.aware()
        for key, expiry in self.issued:
            if expiry <= now and key not in self.expired:
                self.clock.emulator.control.expire_aws_credentials(key)
                self.expired.add(key)

    def session(self) -> boto3.session.Session:
        first = self.refresh()
        credentials = RefreshableCredentials(
            first["access_key"], first["secret_key"], first["token"],
            RefreshableCredentials._expiry_datetime(first["expiry_time"]), self.refresh, "assume-role",
            time_fetcher=self.clock.aware,
        )
        core = botocore.session.Session()
        core._credentials = credentials
        return boto3.session.Session(botocore_session=core, region_name=self.aws_env["aws_region"])


def test_six_hours_of_storage_calls_with_five_minute_tokens_and_expiring_aws_roles(
    emulator, aws_env, settings_for, monkeypatch, google_request
):
    clock = SimulatedClock(emulator)
    monkeypatch.setattr(google.auth._helpers, "utcnow", clock)
    emulator.control.set_token_ttl(sts=FEDERATED_TOKEN_SECONDS, iam=GOOGLE_TOKEN_SECONDS)
    role = ExpiringRole(aws_env, clock)
    supplier = Boto3Supplier(role.session, identity_key="long-task", description="role wif-role (expiring)")
    credentials = WifCredentials(settings_for(num_retries=0), supplier, clock=clock)
    objects = f"{aws_env['storage_host']}/storage/v1/b/{aws_env['bucket']}/o"

    statuses = []
    token, expiry = None, None
    refreshed_with_time_left = []
    for _ in range(TASK_HOURS * 3600 // STEP_SECONDS):
        clock.advance(STEP_SECONDS)
        role.expire_outdated()
        headers: dict[str, str] = {}
        credentials.before_request(google_request, "GET", objects, headers)
        if credentials.token != token:
            if token is not None:
                refreshed_with_time_left.append((expiry - clock()).total_seconds())
            token, expiry = credentials.token, credentials.expiry
        statuses.append(requests.get(objects, headers=headers, timeout=10).status_code)

    assert statuses and set(statuses) == {200}, "every Storage call was authenticated"
    assert len(refreshed_with_time_left) >= TASK_HOURS * 3600 // GOOGLE_TOKEN_SECONDS
    assert min(refreshed_with_time_left) > 0, "every token was replaced before it expired"

    storage = emulator.control.requests("storage")
    assert [entry["status"] for entry in storage] == statuses
    exchanges = emulator.control.requests("sts")
    assert all(entry["status"] == 200 for entry in exchanges + emulator.control.requests("iam"))
    # botocore refreshed the role about every 45 simulated minutes, and each new session signed exchanges.
    assert len(role.issued) >= TASK_HOURS and len(role.expired) >= TASK_HOURS - 1
    sessions = {entry["aws_arn"].rsplit("/", 1)[-1] for entry in exchanges}
    assert len(sessions) >= TASK_HOURS, sessions


def test_an_aws_key_expired_under_a_running_task_is_not_reused(emulator, aws_env, settings_for, monkeypatch,
                                                              google_request):
    """The control for the test above: signing with a key that AWS already expired does fail, so the long run's
    success comes from botocore's refresh, not from an emulator that ignores expiry."""
    import pytest

    from airflow_provider_gcp_wif.errors import WifExchangeError

    clock = SimulatedClock(emulator)
    monkeypatch.setattr(google.auth._helpers, "utcnow", clock)
    role = ExpiringRole(aws_env, clock)
    supplier = Boto3Supplier(role.session, identity_key="no-refresh", description="role wif-role (expiring)")
    supplier.get_aws_security_credentials(None, None)
    emulator.control.expire_aws_credentials(role.issued[0][0])  # AWS expires it early; botocore does not know
    with pytest.raises(WifExchangeError) as caught:
        WifCredentials(settings_for(), supplier, clock=clock).force_refresh(google_request)
    assert "ExpiredToken" in caught.value.reason
