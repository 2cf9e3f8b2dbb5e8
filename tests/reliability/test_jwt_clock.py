"""The JWT cache against a host clock out of step with AWS's: whatever the skew, a reused JWT still has its
refresh margin left at the clouds' clock, and a fresh one is reused (not re-asked for on every call).

AWS's ``Expiration`` is on AWS's clock; comparing it with this host's clock made a host running 10 minutes behind
reuse a 300-s JWT for 14 minutes (stale at Google for 8 of them, every STS exchange refused), and a host ahead of
AWS ask AWS again on every call. The oracle is the returned JWT's own ``exp`` against the emulated clouds' clock."""

from __future__ import annotations

import datetime
import time

import pytest

from airflow_provider_gcp_wif.chain import jwt_audience
from airflow_provider_gcp_wif.diagnosis import jwt_claims
from airflow_provider_gcp_wif.supplier import WebIdentityTokenSupplier

pytestmark = pytest.mark.usefixtures("aws_env")

#: What a reused JWT must have left at the clouds' clock (the cache's minute of margin, less request latency).
MARGIN = 50


@pytest.mark.parametrize("host_skew", [-900, -600, -120, 0, 120, 600, 900])
def test_a_reused_jwt_is_fresh_at_the_clouds_clock_whatever_the_hosts_skew(emulator, role_supplier, settings_for,
                                                                            host_skew):
    moved = 0.0  # how far the clouds' clock (and, by the same amount, the host's) has been moved

    def host_clock() -> datetime.datetime:
        return datetime.datetime.fromtimestamp(time.time() + moved + host_skew, datetime.timezone.utc).replace(
            tzinfo=None)

    jwt = WebIdentityTokenSupplier(role_supplier(), jwt_audience(settings_for(federation="jwt")), clock=host_clock)
    first = jwt.get_subject_token(None, None)
    lifetime = jwt_claims(first)["exp"] - jwt_claims(first)["iat"]
    assert lifetime == 300
    for elapsed in (100, 230, 270, 400, 700, 1000):  # seconds since the first JWT, on every clock
        emulator.control.advance_clock(elapsed - moved)
        moved = elapsed
        token = jwt.get_subject_token(None, None)
        left = jwt_claims(token)["exp"] - (time.time() + moved)
        assert left >= MARGIN, f"host {host_skew:+} s: at +{elapsed} s the JWT has {left:.0f} s left"
        if elapsed == 100:
            assert token == first and jwt.fetch_count == 1, "a JWT with 200 s left is reused"


def test_container_credentials_of_a_minute_still_get_a_jwt_when_aws_allows_one(emulator, monkeypatch):
    """``make mwaa``'s ECS endpoint hands out credentials advertised for 60 s (botocore renews them on every use,
    so they always have 30-60 s left) over a role session of 15 minutes. AWS judges a JWT's duration against the
    session, not the advertised Expiration: it issues a 60-s JWT, so the route must ask rather than refuse
    locally (it refused every time: the jwt route could not work in that stack)."""
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

    info = emulator.info
    emulator.identities.vendor.set_ttl(60)
    try:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in info["aws_identity_sources"]["ecs"]["env"].items():
            monkeypatch.setenv(name, value)
        supplier = Boto3Supplier.default_chain()
        jwt = WebIdentityTokenSupplier(supplier, "https:" + info["jwt_audience"])
        left = (supplier.credentials_expiry() - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        assert left < 90, "the credentials are too short for any JWT by their advertised Expiration"
        claims = jwt_claims(jwt.get_subject_token(None, None))
        assert claims["exp"] - claims["iat"] == 60
        assert claims["sub"] == info["role_arn"]
    finally:
        emulator.identities.vendor.set_ttl(300)
