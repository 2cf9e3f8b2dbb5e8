"""A process forked while a child-process credential context is open (``child_credentials.credential_file``: the
0600 file and the loopback endpoint serving the JWT or the AWS credentials) and that leaves the context in the child
must neither hang (the endpoint's server thread exists only in the parent) nor tear down what the parent still serves:
its file, its endpoint."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from airflow_provider_gcp_wif.child_credentials import credential_file
from airflow_provider_gcp_wif.integration import WifBinding

from .forking import exit_code

pytestmark = [pytest.mark.usefixtures("aws_env"),
              pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")]


@pytest.mark.parametrize("federation", ["sigv4", "jwt"])
def test_a_forked_child_leaving_the_context_neither_hangs_nor_closes_the_parents(emulator, settings_for,
                                                                                role_supplier, federation):
    route = {"federation": "jwt", "provider_id": emulator.info["jwt_provider_id"]} if federation == "jwt" else {}
    binding = WifBinding(settings_for(**route), role_supplier())
    context = credential_file(binding.settings, binding.credentials)
    path = context.__enter__()
    try:
        pid = os.fork()
        if pid == 0:  # the child leaves the context as code after a fork does, then exits
            code = 0
            try:
                context.__exit__(None, None, None)
            except BaseException:  # noqa: BLE001
                code = 3
            finally:
                os._exit(code)
        assert exit_code(pid, 10) == 0, "the child hung (or failed) leaving the context"
        assert os.path.exists(path), "the child removed the parent's credential file"
        with open(path) as handle:
            url = json.load(handle)["credential_source"]["url"]
        if federation == "sigv4":
            url += "/gcp-wif"
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.status == 200, "the parent's endpoint still serves"
    finally:
        context.__exit__(None, None, None)
    assert not os.path.exists(path)
