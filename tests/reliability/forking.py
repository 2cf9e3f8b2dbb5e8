"""Forking while another thread is mid-exchange (test_fork_safety.py, tests/airflow/test_fork_safety_hooks.py): the
child runs its own exchange under a deadline, the parent waits for its held exchange to start."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import requests

from tests.fixtures import wait_until

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
    code = exit_code(pid, CHILD_DEADLINE - (time.monotonic() - started))
    if code is None:
        return "blocked", time.monotonic() - started
    return ("ok" if code == 0 else f"failed {code}"), time.monotonic() - started


def exit_code(pid: int, seconds: float) -> int | None:
    """The exit code of the forked child ``pid`` once it ends within ``seconds``; ``None`` if it does not (it is
    killed then)."""

    def ended() -> tuple[int] | None:
        done, status = os.waitpid(pid, os.WNOHANG)
        return (os.waitstatus_to_exitcode(status),) if done else None

    ending = wait_until(ended, seconds)
    if ending:
        return ending[0]
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def the_parents_exchange_started(emulator) -> None:
    """Until the held exchange reached the emulator (its injected delay fired)."""
    assert wait_until(lambda: requests.get(emulator.info["control_url"] + "/faults", timeout=10).json()[0]["fired"]
                      >= 1, 30, poll=0.02), "the parent's exchange never started"
