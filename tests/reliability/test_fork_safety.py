"""A process that forks (Celery's prefork pool, LocalExecutor, Airflow's task runner) while another of its threads is
in the middle of an exchange leaves the child able to exchange on its own, with the very objects it inherited."""

from __future__ import annotations

import os
import threading

import google.auth.transport.requests
import pytest

from airflow_provider_gcp_wif import credentials as wif_credentials
from airflow_provider_gcp_wif.supplier import Boto3Supplier
from airflow_provider_gcp_wif.token_service import assume_role_session

from .forking import HELD_SECONDS, fork_and_exchange, the_parents_exchange_started

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
              pytest.mark.usefixtures("without_airflows_masker")]

def test_fork_while_a_thread_is_mid_exchange_child_exchanges_with_the_same_credentials(emulator, settings_for,
                                                                                       role_supplier):
    credentials = wif_credentials.get_credentials(settings_for(), role_supplier())
    emulator.control.inject_faults("sts", kinds=["delay"], delay_seconds=HELD_SECONDS, count=1)
    parent_exchange = threading.Thread(target=credentials.refresh, args=(google.auth.transport.requests.Request(),))
    parent_exchange.start()
    # The emulator has taken the STS request and holds it: the thread is inside the exchange, holding its lock.
    the_parents_exchange_started(emulator)
    assert credentials.refreshing

    def child() -> bool:
        credentials.refresh(google.auth.transport.requests.Request())
        shared = wif_credentials.get_credentials(settings_for(), credentials.supplier)
        shared.refresh(google.auth.transport.requests.Request())
        return bool(credentials.valid and shared.valid)

    outcome, seconds = fork_and_exchange(child)
    emulator.control.clear_faults()  # the child is done: let the parent's held request go
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
