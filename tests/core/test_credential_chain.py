"""The credential chain is ours: google-auth's copies keep our context, and our errors surface as they are.

google-auth copies credentials for every ``with_*`` (``with_scopes``, ``with_quota_project``, ...): external accounts
through ``_constructor_args``, impersonated credentials through ``_make_copy``, which passes google-auth's own
arguments only. A copy of what :func:`get_credentials` holds must still refresh through the provider's path (its
transport, the secrets masker) and fail with the same step-named error as the original, naming the real settings,
not placeholders.
"""

from __future__ import annotations

from typing import Any

import google.auth.transport.requests
import pytest

from airflow_provider_gcp_wif import masking
from airflow_provider_gcp_wif.credentials import get_credentials
from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError
from airflow_provider_gcp_wif.supplier import Boto3Supplier

REQUEST = google.auth.transport.requests.Request()
NARROW = "https://www.googleapis.com/auth/devstorage.read_only"


def copies_of(final: Any) -> dict[str, Any]:
    made = {"with_scopes": final.with_scopes([NARROW]), "with_quota_project": final.with_quota_project("billing-2")}
    if hasattr(final, "with_universe_domain"):  # external accounts
        made["with_universe_domain"] = final.with_universe_domain(final.universe_domain)
    return made


def failure(credentials: Any) -> tuple[str, str, str]:
    with pytest.raises(WifExchangeError) as caught:
        credentials.refresh(REQUEST)
    return caught.value.step, caught.value.reason, caught.value.fix


@pytest.mark.parametrize("federation", ["sigv4", "jwt"])
@pytest.mark.parametrize("chain", ["", "sa"], ids=["direct", "impersonated"])
def test_google_auth_copies_refresh_through_our_path_with_our_context(
    emulator, aws_env, settings_for, role_supplier, jwt_settings, monkeypatch, federation, chain
):
    settings = jwt_settings if federation == "jwt" else settings_for()
    if not chain:
        settings = settings.replace(impersonation_chain="")
    credentials = get_credentials(settings, role_supplier())
    final = credentials.chain.final
    heard: list[str] = []
    monkeypatch.setattr(masking, "_listeners", [heard.append])
    monkeypatch.setattr(masking, "_announced", set())

    for name, copy in copies_of(final).items():
        copy.refresh(REQUEST)
        assert copy.token and copy.token in heard, f"{name}: the copy's token reached the secrets masker"

    # Broken on Google's side: the copies fail exactly as the original does, naming the same settings.
    if chain:
        emulator.control.remove_bindings(aws_env["service_account"])
    else:
        emulator.control.set_provider(provider_id=settings.provider_id, disabled=True)
    original = failure(final)
    assert settings.provider_id in original[2] or aws_env["service_account"] in original[2], original
    for name, copy in copies_of(final).items():
        assert failure(copy) == original, name


class _RefusingSupplier(Boto3Supplier):
    """An AWS identity source that finds a setting it cannot serve (as the jwt route does for an old botocore)."""

    def get_aws_region(self, context: Any, request: Any) -> str:
        raise WifConfigError("aws_region", "is not a region this AWS identity can sign for.", "set aws_region.")


@pytest.mark.parametrize("chain", ["", "sa"], ids=["direct", "impersonated"])
def test_a_config_error_of_the_aws_side_surfaces_as_itself_before_anything_is_sent(emulator, settings_for, chain):
    settings = settings_for() if chain else settings_for(impersonation_chain="")
    credentials = get_credentials(settings, _RefusingSupplier(lambda: None, identity_key="refusing"))  # type: ignore[arg-type,return-value]
    with pytest.raises(WifConfigError) as caught:
        credentials.refresh(REQUEST)
    assert caught.value.field == "aws_region"
    assert emulator.control.requests("sts") == [] and emulator.control.requests("iam") == []
