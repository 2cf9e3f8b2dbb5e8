"""The cold path's own overhead: botocore sessions our suppliers create share one process-wide data loader (service
models and endpoint files parsed once per process, not once per AWS session), while the sessions stay separate and
code outside them sees botocore as it was."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import boto3
import botocore
import botocore.session
import pytest

from airflow_provider_gcp_wif import botocore_sharing
from airflow_provider_gcp_wif.supplier import Boto3Supplier

#: The sharing itself is pinned only where it applies (a botocore it was proven on).
sharing = pytest.mark.skipif(not botocore_sharing.applies(), reason="botocore outside PROVEN_BOTOCORE: not shared")


def _assuming_role_factory(info):
    """What ``AwsBaseHook.get_session`` does for a ``role_arn`` connection: a basic session, an STS client from it
    for AssumeRole, a new session for the assumed credentials."""

    def make():
        basic = boto3.session.Session(aws_access_key_id=info["aws_access_key_id"],
                                      aws_secret_access_key=info["aws_secret_access_key"],
                                      region_name=info["aws_region"])
        client = basic.client("sts", endpoint_url=info["aws_endpoint"])
        client.assume_role(RoleArn=info["role_arn"], RoleSessionName="cold-path")
        make.loaders.append(basic._session.get_component("data_loader"))
        return basic

    make.loaders = []
    return make


@sharing
def test_cold_sessions_parse_botocore_data_once_per_process(aws_env, monkeypatch):
    parsed: list[int] = []
    original = json.loads

    def counting_loads(*args, **kwargs):
        parsed.append(1)
        return original(*args, **kwargs)

    factory = _assuming_role_factory(aws_env)
    Boto3Supplier(factory).session()  # the first one in this process may parse
    monkeypatch.setattr(json, "loads", counting_loads)
    for _ in range(3):
        Boto3Supplier(factory).session()
    assert parsed == [], "service models and endpoint files were parsed again for a new AWS session"
    assert len({id(loader) for loader in factory.loaders}) == 1


@sharing
def test_sessions_stay_separate_and_other_code_keeps_its_own_loader(aws_env):
    factory = _assuming_role_factory(aws_env)
    first, second = Boto3Supplier(factory).session(), Boto3Supplier(factory).session()
    assert first is not second and first._session is not second._session
    outside = botocore.session.get_session()
    assert outside.get_component("data_loader") is not factory.loaders[0]

    seen = []
    thread = threading.Thread(target=lambda: seen.append(botocore.session.get_session().get_component("data_loader")))
    thread.start()
    thread.join()
    assert seen[0] is not factory.loaders[0]


def _handlers_of(session) -> tuple:
    """Everything a botocore session's event emitter holds: its handler trie (per node: the handlers registered
    first, in the middle and last) and its unique-id registrations. Handlers are compared by identity, except
    closures that boto3 makes anew for each session (``lazy_call.<locals>._handler``): by name."""
    emitter = session._original_handler

    def same(handler):
        name = getattr(handler, "__qualname__", "")
        return f"{handler.__module__}.{name}" if "<locals>" in name else handler

    def handlers(values) -> tuple:
        return tuple(same(handler) for handler in values)

    def walk(node) -> tuple:
        values = node.get("values")
        lists = None if values is None else (handlers(values.first), handlers(values.middle), handlers(values.last))
        return (node.get("chunk"), lists, tuple(sorted((key, walk(child)) for key, child in
                                                       node.get("children", {}).items())))

    return walk(emitter._handlers._root), tuple(sorted(emitter._unique_id_handlers))


@sharing
def test_cold_sessions_register_botocore_handlers_once_per_process(aws_env, monkeypatch):
    registered: list[int] = []
    original = botocore.session.Session._register_builtin_handlers

    def counting(self, events):
        registered.append(1)
        return original(self, events)

    factory = _assuming_role_factory(aws_env)
    Boto3Supplier(factory).session()  # the first one in this process may register them
    monkeypatch.setattr(botocore.session.Session, "_register_builtin_handlers", counting)
    for _ in range(3):
        Boto3Supplier(factory).session()
    assert registered == [], "botocore's built-in event handlers were registered again for a new AWS session"


@sharing
def test_cold_sessions_hold_the_same_handlers_as_botocores_own_and_each_its_own(aws_env):
    factory = _assuming_role_factory(aws_env)
    first, second = (Boto3Supplier(factory).session()._session for _ in range(2))
    outside = boto3.session.Session(region_name=aws_env["aws_region"])._session  # built handler by handler
    assert _handlers_of(first) == _handlers_of(outside) == _handlers_of(second)
    assert first._original_handler is not second._original_handler

    def marker(**kwargs):
        return None

    first.register("before-call.sts.GetCallerIdentity", marker)
    assert _handlers_of(first) != _handlers_of(second), "a handler registered on one session reached another"
    assert _handlers_of(second) == _handlers_of(outside)
    # What botocore sends to a session's handlers still reaches them (and only that session's).
    heard: list[str] = []
    first.register("gcp-wif-test.event", lambda **kwargs: heard.append("first"))
    second.register("gcp-wif-test.event", lambda **kwargs: heard.append("second"))
    first.get_component("event_emitter").emit("gcp-wif-test.event")
    assert heard == ["first"]


@sharing
def test_botocore_initializers_run_once_for_each_cold_session(aws_env, monkeypatch):
    """Code that hooks every botocore session (``botocore.register_initializer``: tracing, metrics) sees each of
    ours once, and its handlers are there once, as on a session botocore makes itself."""
    initialized = []

    def initializer(session):
        initialized.append(session)
        session.register("gcp-wif-test.initialized", _initializer_handler)

    monkeypatch.setattr(botocore_sharing, "_handlers_template", [])  # prepared anew while the initializer is registered
    botocore.register_initializer(initializer)
    try:
        factory = _assuming_role_factory(aws_env)
        ours = Boto3Supplier(factory).session()._session
        outside = boto3.session.Session(region_name=aws_env["aws_region"])._session
    finally:
        botocore.unregister_initializer(initializer)
    assert ours in initialized and initialized.count(ours) == 1
    assert _handlers_of(ours) == _handlers_of(outside)
    handlers = ours._original_handler._handlers.prefix_search("gcp-wif-test.initialized")
    assert list(handlers).count(_initializer_handler) == 1


def _initializer_handler(**kwargs):
    return None


@pytest.mark.parametrize(("version", "applies"), [
    ("1.33.99", False), ("1.34.0", True), ("1.34.106", True), ("1.43.56", True), ("1.44.18", True),
    ("1.44.999", True), ("1.45.0", False), ("2.0.0", False), ("unknown", False),
])
def test_the_sharing_applies_to_the_botocore_versions_it_was_proven_on(monkeypatch, version, applies):
    monkeypatch.setattr(botocore, "__version__", version)
    botocore_sharing.applies.cache_clear()
    try:
        assert botocore_sharing.applies() is applies
    finally:
        monkeypatch.undo()
        botocore_sharing.applies.cache_clear()


OUTSIDE_THE_GATE = """
import botocore, botocore.session
botocore.__version__ = "1.45.0"
from airflow_provider_gcp_wif.botocore_sharing import shared_botocore_data
get_session, create_loader = botocore.session.get_session, botocore.session.create_loader
with shared_botocore_data():
    sessions = [botocore.session.get_session() for _ in range(2)]
assert botocore.session.get_session is get_session and botocore.session.create_loader is create_loader
assert sessions[0].get_component("data_loader") is not sessions[1].get_component("data_loader")
print("untouched")
"""


def test_a_botocore_outside_the_proven_versions_is_left_as_it_is():
    result = subprocess.run([sys.executable, "-c", OUTSIDE_THE_GATE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "untouched"
