"""Who blocks an asyncio event loop, told by what runs where rather than by how long it took.

A CPython audit hook (``sys.addaudithook``) sees every blocking call the provider could make: a connect on a
blocking socket, a name lookup, a ``time.sleep``, a child process. A call is *blocking the loop* when it happens
on a thread that is running an asyncio event loop; it is *ours* when a frame of ``airflow_provider_gcp_wif`` is on
the stack (google-auth, requests or botocore called by our code count as ours; Airflow's or the stock Google
provider's own calls, made without our code on the stack, do not). Each such call is appended, as one JSON line,
to the file named by ``GCP_WIF_LOOP_GUARD_REPORT``, and the guard writes an ``installed`` line first, so a test
can tell "nothing blocked" from "the guard never ran in that process".

This replaces a wall-clock threshold (asyncio's debug mode naming steps over 0.1 s), which a loaded CI machine
turned red with no change to the code: a refresh that goes to the network on the loop is caught even when the
network answers in a millisecond, and a slow machine is never mistaken for a blocking call.

Test-only: imported by ``gcp_wif_proof_trigger`` (so in every process that runs its triggers) and by
``tests/airflow/test_loop_guard.py``, which shows that it catches our exchange run on a loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from typing import Any

REPORT_ENV = "GCP_WIF_LOOP_GUARD_REPORT"
OURS = f"{os.sep}airflow_provider_gcp_wif{os.sep}"
_reports: set[str] = set()
_hooked = False
_local = threading.local()
_lock = threading.Lock()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    return asyncio._get_running_loop()  # the loop running in *this* thread, if any (asyncio.events.__all__)


def _blocking(event: str, args: tuple[Any, ...]) -> str | None:
    """A description of a blocking call, or None."""
    if event == "socket.connect":
        sock, address = args
        if sock.gettimeout() == 0.0:  # a non-blocking socket: asyncio's own sock_connect, aiohttp
            return None
        return f"socket.connect {address!r}"
    if event == "socket.getaddrinfo":
        return f"socket.getaddrinfo {args[0]!r}:{args[1]!r}"
    if event == "time.sleep":
        return f"time.sleep {args[0]!r}" if args and args[0] else None
    if event == "subprocess.Popen":
        return f"subprocess.Popen {args[1]!r}"
    return None


def _our_frames() -> list[str]:
    frame = sys._getframe(2)
    found = []
    while frame is not None:
        filename = frame.f_code.co_filename
        if OURS in filename:
            found.append(f"{filename.split(OURS, 1)[1]}:{frame.f_lineno} {frame.f_code.co_name}")
        frame = frame.f_back
    return found


def _write(path: str, record: dict[str, Any]) -> None:
    with _lock, open(path, "a", encoding="utf-8") as report:
        report.write(json.dumps(record) + "\n")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _reports or getattr(_local, "busy", False) or _running_loop() is None:
        return
    what = _blocking(event, args)
    if what is None:
        return
    _local.busy = True  # the report's own open() raises audit events too
    try:
        ours = _our_frames()
        if ours:
            record = {"blocked": what, "pid": os.getpid(), "thread": threading.current_thread().name,
                      "ours": ours[:8]}
            for path in list(_reports):
                _write(path, record)
    finally:
        _local.busy = False


def install(report: str | None = None) -> None:
    """Report to ``report`` (default: ``$GCP_WIF_LOOP_GUARD_REPORT``; nothing when neither is set). The audit hook
    is added once per process (audit hooks cannot be removed); :func:`uninstall` stops the reports to a file."""
    path = report or os.environ.get(REPORT_ENV)
    if not path or path in _reports:
        return
    global _hooked
    _write(path, {"installed": os.getpid()})
    _reports.add(path)
    if not _hooked:
        _hooked = True
        sys.addaudithook(_hook)


def uninstall(report: str) -> None:
    _reports.discard(report)


def read_report(path: str) -> tuple[set[int], list[dict[str, Any]]]:
    """(pids that installed the guard, the blocking calls recorded)."""
    pids: set[int] = set()
    blocked: list[dict[str, Any]] = []
    if not os.path.exists(path):
        return pids, blocked
    with open(path, encoding="utf-8") as report:
        for line in report:
            record = json.loads(line)
            if "installed" in record:
                pids.add(record["installed"])
            else:
                blocked.append(record)
    return pids, blocked
