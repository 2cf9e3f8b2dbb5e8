"""Many callers at once: several freshly spawned processes, each with 32 threads starting together, make exactly one
exchange per process; later, in the refresh-ahead window and again at expiry, 32 threads cause one refresh per
process, never a storm. Counted in the emulator's request log. "Later" is a clock each process moves (its
credentials' ``clock=`` and the emulator's clock offset, one offset), not a sleep."""

from __future__ import annotations

import datetime
import hashlib
import multiprocessing
import threading
from typing import Any

PROCESSES = 3
THREADS = 32
GOOGLE_TOKEN_SECONDS = 6


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _all_threads_at_once(credentials_for, request) -> list[str]:
    """``THREADS`` threads released together, each as a new hook would: look up the shared credentials with its
    own supplier, then authorize a request. Returns the token fingerprints they sent."""
    barrier = threading.Barrier(THREADS)
    seen: list[str] = []
    failures: list[BaseException] = []

    def call() -> None:
        try:
            credentials = credentials_for()
            barrier.wait()
            headers: dict[str, str] = {}
            credentials.before_request(request, "GET", "http://storage.invalid/", headers)
            seen.append(_fingerprint(headers["authorization"]))
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            failures.append(err)

    threads = [threading.Thread(target=call) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return seen


class SharedClock:
    """Real time plus an offset the worker moves, for its credentials and for the emulator (which issues and expires
    tokens on its own clock): jumping to a moment of the token's life replaces sleeping until it."""

    def __init__(self, control: Any) -> None:
        self.control = control
        self.offset = datetime.timedelta()

    def __call__(self) -> datetime.datetime:
        from airflow_provider_gcp_wif.refresh import utcnow

        return utcnow() + self.offset

    def move_to(self, moment: datetime.datetime) -> None:
        from airflow_provider_gcp_wif.refresh import utcnow

        self.offset = moment - utcnow()
        self.control.set_clock_offset(self.offset.total_seconds())


def worker(info: dict[str, Any], start: Any, results: Any) -> None:
    """One spawned process: start together with the others, then three bursts of 32 threads."""
    import google.auth.transport.requests

    from airflow_provider_gcp_wif.credentials import get_credentials
    from airflow_provider_gcp_wif.supplier import Boto3Supplier
    from airflow_provider_gcp_wif.testing.control import EmulatorControl
    from airflow_provider_gcp_wif.token_service import assume_role_session
    from tests.fixtures import make_settings

    try:
        settings = make_settings(info)
        request = google.auth.transport.requests.Request()
        clock = SharedClock(EmulatorControl(info["control_url"]))

        def credentials_for():
            supplier = Boto3Supplier(lambda: assume_role_session(info["role_arn"], region=info["aws_region"]),
                                     identity_key=f"role:{info['role_arn']}", description="role wif-role")
            return get_credentials(settings, supplier, clock=clock)

        start.wait()
        first = _all_threads_at_once(credentials_for, request)
        credentials = credentials_for()
        after_first = credentials.exchange_count
        # Inside the advisory window (refresh ahead), before the mandatory one: one thread refreshes. The processes
        # move their clocks together (each sets the emulator's offset to its own: they differ by milliseconds).
        start.wait(60)
        windows = credentials.windows
        clock.move_to(windows.advisory_at + (windows.mandatory_at - windows.advisory_at) / 3)
        advisory = _all_threads_at_once(credentials_for, request)
        after_advisory = credentials.exchange_count
        # Past expiry: everyone waits for a single refresh.
        start.wait(60)
        clock.move_to(credentials.expiry + datetime.timedelta(seconds=0.2))
        assert not credentials.valid
        expired = _all_threads_at_once(credentials_for, request)
        results.put({"first": first, "advisory": advisory, "expired": expired, "counts": [
            after_first, after_advisory, credentials.exchange_count]})
    except BaseException as err:  # noqa: BLE001 - reported to the parent
        results.put({"error": repr(err)})


def test_spawned_processes_with_32_threads_each_exchange_once_and_refresh_once(emulator, aws_env):
    emulator.control.set_token_ttl(iam=GOOGLE_TOKEN_SECONDS)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [context.Process(target=worker, args=(aws_env, start, results)) for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
    assert all("error" not in outcome for outcome in outcomes), outcomes

    for outcome in outcomes:
        assert len(outcome["first"]) == THREADS and len(set(outcome["first"])) == 1, "one token per process"
        assert outcome["counts"] == [1, 2, 3], "one exchange, then one refresh ahead, then one at expiry"
        # Ahead of expiry some callers still use the valid token while one fetches the next: at most two tokens.
        ahead = set(outcome["advisory"]) - set(outcome["first"])
        assert len(ahead) == 1 and len(outcome["advisory"]) == THREADS
        assert len(set(outcome["expired"])) == 1
        assert set(outcome["expired"]).isdisjoint(set(outcome["first"]) | ahead)
    assert len({outcome["first"][0] for outcome in outcomes}) == PROCESSES, "each process exchanged for itself"

    sts = emulator.control.requests("sts")
    iam = emulator.control.requests("iam.generateAccessToken")
    assert len(sts) == PROCESSES, "one STS exchange per process; the federated token outlives the short SA tokens"
    assert len(iam) == 3 * PROCESSES, "three generateAccessToken calls per process for 96 callers"
    assert all(entry["status"] == 200 for entry in sts + iam)
