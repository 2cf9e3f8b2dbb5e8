"""A stock hook built before a fork keeps working in the child, even when another thread of the parent was inside
the hook's first exchange at the moment of the fork (the hook's binding holds the parent's shared credentials)."""

from __future__ import annotations

import os
import threading

import pytest

from tests.reliability.forking import HELD_SECONDS, fork_and_exchange, the_parents_exchange_started

from .connections import gcs_hook

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"), pytest.mark.usefixtures("plugin_loaded")]


def test_fork_while_a_thread_is_mid_exchange_child_uses_the_same_hook(wif_env, emulator):
    hook = gcs_hook(gcp_conn_id="gcp_wif_default")
    emulator.control.inject_faults("sts", kinds=["delay"], delay_seconds=HELD_SECONDS, count=1)
    parent_call = threading.Thread(target=hook.exists, args=(wif_env["bucket"], "nothing-here"))
    parent_call.start()
    the_parents_exchange_started(emulator)

    def child() -> bool:
        hook.upload(bucket_name=wif_env["bucket"], object_name=f"from-child-{os.getpid()}", data="forked")
        return True

    outcome, seconds = fork_and_exchange(child)
    emulator.control.clear_faults()  # the child is done: let the parent's held request go
    parent_call.join(HELD_SECONDS + 30)
    assert outcome == "ok", f"child {outcome} after {seconds:.1f}s"
    assert any(name.startswith("from-child-") for name in gcs_hook(gcp_conn_id="gcp_wif_default").list(wif_env["bucket"]))
