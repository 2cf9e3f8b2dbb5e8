"""Whatever a connection's extras hold, parsing them gives a valid ``WifSettings`` or a ``WifConfigError`` naming
a field, never another exception, and never touches the network (any socket connect fails the test)."""

from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif.config import KNOWN_KEYS, LEGACY_PREFIX, WifSettings
from airflow_provider_gcp_wif.errors import WifConfigError

PLAUSIBLE = {
    "project_number": st.sampled_from(["734501234567", "0", "my-project", ""]),
    "pool_id": st.sampled_from(["aws-pool", "gcp-pool", "AB", ""]),
    "provider_id": st.sampled_from(["aws-provider", "x" * 40]),
    "impersonation_chain": st.sampled_from(["sa@p.iam.gserviceaccount.com", "a@b.c,d@e.f", "'quoted'@x", ""]),
    "sts_endpoint": st.sampled_from(["https://sts.googleapis.com/v1/token", "http://127.0.0.1:1/v1/token",
                                     "https://evil.example/v1/token", "ftp://x", "https://u:p@sts.googleapis.com"]),
    "iam_endpoint": st.sampled_from(["https://iamcredentials.googleapis.com", "https://x.p.googleapis.com",
                                     "http://evil.example"]),
    "audience": st.sampled_from(["//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/"
                                 "aws-pool/providers/aws-provider", "https://iam.googleapis.com/x", "//x"]),
    "credential_config": st.sampled_from(['{"type": "external_account"}', "{not json", '{"type": "service_account"}',
                                          '[]']),
    "lifetime_seconds": st.sampled_from(["3600s", "0", "43201", "1.5", "nan", "-1"]),
    "num_retries": st.sampled_from(["5", "21", "-1", "x"]),
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=40))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                             max_size=3), max_leaves=6)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.sampled_from([LEGACY_PREFIX + k for k in KNOWN_KEYS]),
                 st.text(max_size=20))


@st.composite
def extras(draw):
    base = {key: draw(strategy) for key, strategy in PLAUSIBLE.items() if draw(st.booleans())}
    base.update(draw(st.dictionaries(keys, values, max_size=8)))
    return base


@pytest.fixture
def no_network(monkeypatch):
    attempts: list[object] = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"settings parsing opened a connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: refuse(None, a))
    return attempts


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=extras())
def test_any_extras_give_settings_or_a_config_error_without_io(no_network, raw):
    try:
        parsed = WifSettings.from_extras(raw, conn_id="fuzzed", allowed_endpoint_hosts="")
    except WifConfigError as err:
        assert err.field and str(err).startswith("gcp_wif connection 'fuzzed': ")
    else:
        assert parsed.audience.startswith("//iam.googleapis.com/projects/")
        assert 0 <= parsed.num_retries <= 20 and 1 <= parsed.lifetime_seconds <= 43200
    assert no_network == []


def test_the_no_network_guard_catches_a_connection(no_network):
    with pytest.raises(AssertionError):
        socket.create_connection(("127.0.0.1", 9))
