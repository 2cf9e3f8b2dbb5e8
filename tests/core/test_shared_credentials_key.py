"""The process cache is keyed by the settings object itself (plus the AWS identity source), the host cache by a
digest of the same: every field that changes the token separates them, the connection id (which only names the
settings) does not."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.credentials import cache_key, clear_cache, get_credentials
from airflow_provider_gcp_wif.host_cache import HostTokenCache
from airflow_provider_gcp_wif.supplier import Boto3Supplier

BASE = WifSettings.from_extras({"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider",
                                "impersonation_chain": "a@p.iam.gserviceaccount.com"},
                               conn_id="one", allowed_endpoint_hosts="")
COMPARED = [f.name for f in dataclasses.fields(WifSettings) if f.compare]


def changed(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return "other"
    if isinstance(value, int):
        return value + 1
    if isinstance(value, tuple):
        return (*value, "other@p.iam.gserviceaccount.com")
    return f"{value}x"


@pytest.fixture
def supplier():
    clear_cache()
    yield Boto3Supplier(lambda: None, identity_key="k")  # type: ignore[arg-type,return-value]
    clear_cache()


@pytest.mark.parametrize("name", COMPARED)
def test_every_field_that_changes_the_token_has_credentials_of_its_own(supplier, name):
    other = dataclasses.replace(BASE, **{name: changed(getattr(BASE, name))})
    assert get_credentials(other, supplier) is not get_credentials(BASE, supplier)
    assert HostTokenCache.key_for(cache_key(other, supplier)) != HostTokenCache.key_for(cache_key(BASE, supplier))


def test_the_connection_id_only_names_the_settings(supplier):
    renamed = dataclasses.replace(BASE, conn_id="two")
    assert get_credentials(renamed, supplier) is get_credentials(BASE, supplier)
    assert HostTokenCache.key_for(cache_key(renamed, supplier)) == HostTokenCache.key_for(cache_key(BASE, supplier))


def test_another_aws_identity_source_has_credentials_of_its_own(supplier):
    other = Boto3Supplier(lambda: None, identity_key="k2")  # type: ignore[arg-type,return-value]
    assert get_credentials(BASE, other) is not get_credentials(BASE, supplier)
    assert HostTokenCache.key_for(cache_key(BASE, other)) != HostTokenCache.key_for(cache_key(BASE, supplier))


def test_the_host_key_is_stable_and_a_file_name():
    supplier = Boto3Supplier(lambda: None, identity_key="k")  # type: ignore[arg-type,return-value]
    key = HostTokenCache.key_for(cache_key(BASE, supplier))
    assert key == HostTokenCache.key_for(cache_key(dataclasses.replace(BASE), supplier))
    assert len(key) == 64 and set(key) <= set("0123456789abcdef")


# -- the AWS identity the session resolves (the host cache key's last part) -----------------------------------------


def _material(credentials: Any) -> str:
    """What a supplier whose session resolves ``credentials`` names as its AWS identity."""
    import types

    session = types.SimpleNamespace(get_credentials=lambda: credentials)
    return Boto3Supplier(lambda: session, identity_key="k").identity_material()  # type: ignore[arg-type,return-value]


def _assumed(fetcher: Any) -> Any:
    from botocore.credentials import DeferredRefreshableCredentials

    return DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")


def _role_fetchers(session_names: list[str | None], *, generated: list[str]) -> list[Any]:
    """AssumeRole fetchers of one role by one source, as botocore builds them: with ``session_names`` configured,
    or (``None``) the name botocore generates, here as if generated in the seconds of ``generated``."""
    from botocore.credentials import AssumeRoleCredentialFetcher, Credentials

    source = Credentials("AKIDSOURCE", "source-secret")
    fetchers = []
    for name, second in zip(session_names, generated, strict=True):
        extra = {"RoleSessionName": name} if name else None
        fetcher = AssumeRoleCredentialFetcher(lambda *a, **k: None, source, "arn:aws:iam::123456789012:role/r", extra)
        if fetcher._using_default_session_name:  # botocore named it botocore-session-<int(time.time())>
            fetcher._role_session_name = fetcher._assume_kwargs["RoleSessionName"] = f"botocore-session-{second}"
        fetchers.append(fetcher)
    return fetchers


def test_processes_assuming_a_role_under_botocore_generated_session_names_share_one_identity():
    """botocore names an unnamed role session after the second it was made; processes started in different seconds
    are still the same identity (botocore's own credential cache leaves the generated name out as well)."""
    first, second = _role_fetchers([None, None], generated=["1700000000", "1700000007"])
    assert first._assume_kwargs["RoleSessionName"] != second._assume_kwargs["RoleSessionName"]
    assert _material(_assumed(first)) == _material(_assumed(second))


def test_configured_role_session_names_still_separate_identities():
    first, second = _role_fetchers(["etl", "reports"], generated=["1700000000", "1700000000"])
    assert _material(_assumed(first)) != _material(_assumed(second))


def test_a_fetcher_that_does_not_say_whether_its_session_name_was_generated_keeps_it():
    first, second = _role_fetchers([None, None], generated=["1700000000", "1700000007"])
    for fetcher in (first, second):
        del fetcher._using_default_session_name
    assert _material(_assumed(first)) != _material(_assumed(second))


def test_web_identity_roles_under_generated_session_names_share_one_identity():
    from botocore.credentials import AssumeRoleWithWebIdentityCredentialFetcher

    fetchers = []
    for second in ("1700000000", "1700000007"):
        fetcher = AssumeRoleWithWebIdentityCredentialFetcher(lambda *a, **k: None, lambda: "the-jwt",
                                                             "arn:aws:iam::123456789012:role/r")
        assert fetcher._using_default_session_name
        fetcher._role_session_name = fetcher._assume_kwargs["RoleSessionName"] = f"botocore-session-{second}"
        fetchers.append(fetcher)
    assert _material(_assumed(fetchers[0])) == _material(_assumed(fetchers[1]))


def test_keys_with_one_access_key_id_and_another_secret_or_session_token_are_other_identities():
    """An access key id is not secret: a process that sets someone else's with any secret key must not name that
    identity (and read its tokens from the host cache)."""
    from botocore.credentials import Credentials

    own = _material(Credentials("AKIDSHARED", "the-real-secret", "the-session-token"))
    assert own != _material(Credentials("AKIDSHARED", "a-guessed-secret", "the-session-token"))
    assert own != _material(Credentials("AKIDSHARED", "the-real-secret", "another-session-token"))
    assert own != _material(Credentials("AKIDSHARED", "the-real-secret"))
    assert own == _material(Credentials("AKIDSHARED", "the-real-secret", "the-session-token"))
    assert "the-real-secret" not in own and "the-session-token" not in own
