"""A process that forks (Celery's prefork pool, LocalExecutor, Airflow's task runner) while another of its threads is
in the middle of an exchange leaves the child able to exchange on its own, with the very objects it inherited."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import google.auth.transport.requests
import pytest
import requests

from airflow_provider_gcp_wif import credentials as wif_credentials
from airflow_provider_gcp_wif.supplier import Boto3Supplier
from airflow_provider_gcp_wif.token_service import assume_role_session

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
              pytest.mark.usefixtures("without_airflows_masker")]

#: The child must finish its own exchange within this many seconds (it takes well under one on an idle machine; CI
#: runs the MWAA matrix beside this suite on two cores).
CHILD_DEADLINE = 20.0
#: The parent's exchange is held this long at Google STS: longer than the child's deadline.
HELD_SECONDS = 40.0





def fork_and_exchange(child_exchange: Callable[[], bool]) -> tuple[str, float]:
    """Fork; the child runs ``child_exchange`` and exits 0 if it returned True. Returns how the child ended (``ok``,
    ``failed <status>`` or ``blocked``, killed after :data:`CHILD_DEADLINE`) and how long it took."""
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            status = 0 if child_exchange() else 2
        except BaseException:  # noqa: BLE001 - the status says it
            status = 3
        finally:
            os._exit(status)
    while time.monotonic() - started < CHILD_DEADLINE:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return ("ok" if code == 0 else f"failed {code}"), time.monotonic() - started
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "blocked", time.monotonic() - started


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the parent's exchange never started"
        time.sleep(0.02)


def test_fork_while_a_thread_is_mid_exchange_child_exchanges_with_the_same_credentials(emulator, settings_for,
                                                                                       role_supplier):
    credentials = wif_credentials.get_credentials(settings_for(), role_supplier())
    emulator.control.inject_faults("sts", kinds=["delay"], delay_seconds=HELD_SECONDS, count=1)
    parent_exchange = threading.Thread(target=credentials.refresh, args=(google.auth.transport.requests.Request(),))
    parent_exchange.start()
    # The emulator has taken the STS request and holds it: the thread is inside the exchange, holding its lock.
    wait_until(lambda: requests.get(emulator.info["control_url"] + "/faults", timeout=10).json()[0]["fired"] >= 1)
    assert credentials._lock.locked()

    def child() -> bool:
        credentials.refresh(google.auth.transport.requests.Request())
        shared = wif_credentials.get_credentials(settings_for(), credentials.supplier)
        shared.refresh(google.auth.transport.requests.Request())
        return bool(credentials.valid and shared.valid)

    outcome, seconds = fork_and_exchange(child)
    parent_exchange.join(HELD_SECONDS + 30)
    assert outcome == "ok", f"child {outcome} after {seconds:.1f}s"
    assert credentials.valid, "the parent's own exchange completed too"


def test_fork_while_a_thread_is_creating_the_aws_session_child_exchanges(emulator, settings_for, aws_env):
    """The supplier's lock (and botocore's, inside the session) is held at the fork: the child builds its own."""
    slow_lookup = threading.Event()
    in_lookup = threading.Event()

    def session() -> object:
        if os.getpid() == parent_pid:  # the parent's AWS connection lookup is slow; the child's is not
            in_lookup.set()
            slow_lookup.wait(60)
        return assume_role_session(aws_env["role_arn"], region=aws_env["aws_region"])

    parent_pid = os.getpid()
    supplier = Boto3Supplier(session, identity_key="slow-lookup", description="a slow AWS connection")
    credentials = wif_credentials.get_credentials(settings_for(), supplier)
    parent_exchange = threading.Thread(target=credentials.refresh, args=(google.auth.transport.requests.Request(),))
    parent_exchange.start()
    assert in_lookup.wait(30)

    outcome, seconds = fork_and_exchange(lambda: bool(credentials.refresh(google.auth.transport.requests.Request())
                                                      or credentials.valid))
    slow_lookup.set()
    parent_exchange.join(60)
    assert outcome == "ok", f"child {outcome} after {seconds:.1f}s"
    assert credentials.valid
