"""The triggerer proof's event-loop guard (tests/airflow/dags/loop_guard.py) catches our exchange run on a loop,
however fast the network answers, and stays silent when the same exchange runs in a thread (as google-auth's
refresh does under ``GoogleBaseAsyncHook``: ``sync_to_async``). Without this, its silence in
tests/airflow/test_real_processes.py would prove nothing."""

from __future__ import annotations

import asyncio
import sys

import google.auth.transport.requests

from airflow_provider_gcp_wif.credentials import get_credentials
from tests.airflow_process import TEST_DAGS

sys.path.insert(0, str(TEST_DAGS))
import loop_guard

REQUEST = google.auth.transport.requests.Request()


def test_our_exchange_on_the_loop_is_reported_and_in_a_thread_it_is_not(emulator, settings_for, role_supplier,
                                                                          tmp_path):
    report = str(tmp_path / "loop.jsonl")
    loop_guard.install(report)
    try:
        on_loop = get_credentials(settings_for(), role_supplier())
        in_thread = get_credentials(settings_for(scope="https://www.googleapis.com/auth/devstorage.read_only"),
                                    role_supplier())

        async def refreshes() -> None:
            await asyncio.to_thread(in_thread.refresh, REQUEST)
            assert loop_guard.read_report(report)[1] == []
            on_loop.refresh(REQUEST)  # what the triggerer must never do: the exchange on the event loop

        asyncio.run(refreshes())
    finally:
        loop_guard.uninstall(report)
    pids, blocked = loop_guard.read_report(report)
    assert pids and in_thread.token and on_loop.token
    assert blocked, "the exchange on the loop went unreported"
    assert all(record["ours"] for record in blocked)
    assert any(record["blocked"].startswith("socket.connect") for record in blocked), blocked
