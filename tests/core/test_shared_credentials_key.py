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
