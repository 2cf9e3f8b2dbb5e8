"""A fork while another thread has a child-process credential context open (``credential_file`` /
``authorized_gcloud`` hold a per-process lock over ``os.environ`` for their whole duration, a Dataflow launch or
a gcloud session can take minutes): the forked child (Airflow 2's task runner, Celery's prefork pool) must be able
to open its own context, and must not keep the other thread's variables, which nothing in the child would ever
restore."""

from __future__ import annotations

import os
import threading

from airflow_provider_gcp_wif.child_credentials import patched_environ

VARIABLE = "GCP_WIF_TEST_FORKED_OVERLAY"
OWN = "GCP_WIF_TEST_FORKED_OWN"


def test_a_child_forked_while_another_thread_holds_a_context_can_open_its_own_and_keeps_nothing_of_it():
    os.environ.pop(VARIABLE, None)
    entered, release = threading.Event(), threading.Event()

    def other_task() -> None:
        with patched_environ({VARIABLE: "the other thread's"}):
            entered.set()
            release.wait(20)

    holder = threading.Thread(target=other_task)
    holder.start()
    assert entered.wait(10)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            done = threading.Event()
            results: list[str | None] = []

            def child_context() -> None:
                results.append(os.environ.get(VARIABLE))
                with patched_environ({OWN: "mine"}):
                    results.append(os.environ.get(OWN))
                done.set()

            threading.Thread(target=child_context, daemon=True).start()
            code = 0 if done.wait(5) and results == [None, "mine"] and OWN not in os.environ else (
                2 if not done.is_set() else 3)
        finally:
            os.write(write, bytes([code]))
            os._exit(code)
    os.close(write)
    try:
        outcome = os.read(read, 1)
    finally:
        release.set()
        holder.join(10)
        os.waitpid(pid, 0)
    assert outcome == b"\x00", {b"\x02": "the child could not open a context (the lock stayed held)",
                                b"\x03": "the child kept the other thread's variable"}.get(outcome, outcome)
    assert VARIABLE not in os.environ


def test_a_thread_that_forks_inside_its_own_context_keeps_it_in_the_child():
    os.environ.pop(VARIABLE, None)
    with patched_environ({VARIABLE: "mine"}):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                inside = os.environ.get(VARIABLE) == "mine"
                with patched_environ({OWN: "nested"}):
                    pass
                code = 0 if inside and os.environ.get(VARIABLE) == "mine" else 4
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert VARIABLE not in os.environ
