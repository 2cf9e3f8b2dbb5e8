"""The secrets backend's ``secret_manager_endpoint`` receives the Google access token on every lookup: the same
differential oracle as ``sts_endpoint`` / ``iam_endpoint`` (test_endpoint_differential.py) holds for it. Whatever
endpoint string ``backend_kwargs`` holds, if the backend accepts it, every library that sends the Secret Manager
request connects to an allowed host."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from airflow_provider_gcp_wif.errors import WifConfigError
from tests.reliability.endpoint_oracle import (
    DEPLOYMENT_ALLOWS,
    FORBIDDEN,
    connection_targets,
    endpoints,
    reference_allows,
)

pytest.importorskip("airflow.providers.google.cloud.secrets.secret_manager")
ACCESS = "/v1/projects/p/secrets/s/versions/latest:access"


@pytest.fixture(autouse=True)
def _deployment_allows(monkeypatch):
    monkeypatch.setenv("AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS", DEPLOYMENT_ALLOWS)


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(endpoint=endpoints)
def test_an_accepted_secret_manager_endpoint_only_ever_reaches_an_allowed_host(endpoint):
    from airflow_provider_gcp_wif.secrets.secret_manager import _endpoint

    try:
        stored = _endpoint(endpoint, "googleapis.com")
    except WifConfigError as err:
        assert err.field == "secret_manager_endpoint"
        return
    assert not FORBIDDEN.search(stored), (endpoint, stored)
    for who, host, port in connection_targets(stored + ACCESS):
        assert reference_allows(host), f"{endpoint!r} accepted; {who} would connect to {host!r} ({stored!r})"
        assert port is None or 1 <= port <= 65535, (endpoint, who, port)


def test_the_backslash_bypass_is_refused_for_the_secret_manager_endpoint():
    from airflow_provider_gcp_wif.secrets.secret_manager import _endpoint

    with pytest.raises(WifConfigError) as caught:
        _endpoint("https://192.0.2.2\\.googleapis.com", "googleapis.com")
    assert caught.value.field == "secret_manager_endpoint"
