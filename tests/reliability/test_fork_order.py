"""A forked child runs the provider's after-fork handlers in the order :mod:`airflow_provider_gcp_wif.forks` declares,
whatever order their modules were imported in (``os.register_at_fork`` alone would run them in import order): each
case is a fresh interpreter that imports the modules in its own order, then forks for real; the child reports which
handlers ran, in which order (a profile function set before the fork is inherited by the child)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from airflow_provider_gcp_wif import forks, id_tokens

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

ROOT = pathlib.Path(__file__).resolve().parents[2]
DECLARED = [
    "airflow_provider_gcp_wif.child_credentials._environ_after_fork_in_child",
    "airflow_provider_gcp_wif.host_cache._close_inherited_locks",
    "airflow_provider_gcp_wif.transport._forget_transport_in_child",
    "airflow_provider_gcp_wif.supplier._after_fork_in_child",
    "airflow_provider_gcp_wif.credentials._after_fork_in_child",
    "airflow_provider_gcp_wif.id_tokens._after_fork_in_child",
]

CHILD = r"""
import importlib, json, os, sys

for name in sys.argv[1].split(","):
    importlib.import_module(f"airflow_provider_gcp_wif.{name}")
from airflow_provider_gcp_wif import forks

heard = []
if sys.argv[2] == "probes":  # registered in reverse order, the first one failing
    def late():
        heard.append("late")

    def early():
        heard.append("early")
        raise RuntimeError("a failing handler")

    forks.register(1000, late)
    forks.register(1, early)

names = {handler.__code__: f"{handler.__module__}.{handler.__qualname__}" for _, handler in forks.handlers()}
ran = []

def profile(frame, event, arg):
    if event == "call" and frame.f_code in names:
        ran.append(names[frame.f_code])

read, write = os.pipe()
sys.setprofile(profile)
pid = os.fork()
sys.setprofile(None)
if pid == 0:
    os.write(write, json.dumps({"ran": ran, "heard": heard}).encode())
    os._exit(0)
os.close(write)
answer = b""
while chunk := os.read(read, 65536):
    answer += chunk
os.waitpid(pid, 0)
print(json.dumps({"registered": list(names.values()), "parent_ran": ran, **json.loads(answer)}))
"""


def run_child(import_order: list[str], mode: str = "plain") -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, ",".join(import_order), mode], capture_output=True,
                            text=True, timeout=120, check=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("import_order", [
    ["credentials", "id_tokens", "child_credentials"],
    ["id_tokens", "credentials", "child_credentials"],  # id_tokens imports credentials lazily: its handler would
    # have come first
    ["id_tokens", "host_cache", "child_credentials", "transport", "supplier", "credentials"],
    ["child_credentials", "credentials", "supplier", "transport", "host_cache", "id_tokens"],
])
def test_a_forked_child_runs_the_handlers_in_the_declared_order_whatever_the_import_order(import_order):
    result = run_child(import_order)
    assert result["registered"] == DECLARED
    assert result["ran"] == DECLARED, "the child ran the handlers in another order, or not all of them"
    assert result["parent_ran"] == [], "the parent ran a child handler"


def test_handlers_run_by_order_not_registration_and_a_failing_one_does_not_stop_the_others():
    result = run_child(["credentials", "id_tokens", "child_credentials"], mode="probes")
    assert result["heard"] == ["early", "late"]
    assert result["ran"][0].endswith(".early") and result["ran"][-1].endswith(".late")
    assert result["ran"][1:-1] == DECLARED


def test_an_order_belongs_to_one_handler():
    forks.register(forks.ID_TOKENS, id_tokens._after_fork_in_child)  # the same function again (a reload): kept
    assert [handler for order, handler in forks.handlers() if order == forks.ID_TOKENS] == [
        id_tokens._after_fork_in_child]
    with pytest.raises(ValueError, match=r"is taken by airflow_provider_gcp_wif\.id_tokens\._after_fork_in_child"):
        forks.register(forks.ID_TOKENS, lambda: None)
