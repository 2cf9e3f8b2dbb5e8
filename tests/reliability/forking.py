"""Forking while another thread is mid-exchange (test_fork_safety.py, tests/airflow/test_fork_safety_hooks.py): the
child runs its own exchange under a deadline, the parent waits for its held exchange to start."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

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
