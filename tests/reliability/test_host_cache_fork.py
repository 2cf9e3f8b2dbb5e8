"""A fork while a thread holds the host token cache's lock (Airflow 2's task runner and Celery's prefork pool fork
without exec): the child's copy of the lock file's descriptor must not keep the lock held after the parent's thread
released it, or every other process waits ``lock_wait_seconds`` for as long as the child runs."""

from __future__ import annotations

import os
import threading
import time

from airflow_provider_gcp_wif.host_cache import HostTokenCache


def test_a_forked_child_does_not_keep_the_lock_its_parent_released(tmp_path):
    cache = HostTokenCache(str(tmp_path / "cache"), lock_wait_seconds=3.0)
    key = "k" * 64
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with cache.locked(key):
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(10)
    pid = os.fork()
    if pid == 0:  # the child lives on (a task) without touching the cache
        time.sleep(6)
        os._exit(0)
    try:
        release.set()
        holder.join(10)
        other = HostTokenCache(str(tmp_path / "cache"), lock_wait_seconds=3.0)
        started = time.monotonic()
        with other.locked(key):
            waited = time.monotonic() - started
        assert waited < 1.0, f"waited {waited:.1f} s for a lock that only the forked child's descriptor held"
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
