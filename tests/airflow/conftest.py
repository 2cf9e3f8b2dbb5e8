from __future__ import annotations

import pytest

from airflow_provider_gcp_wif import credentials as wif_credentials
from tests.airflow_process import components

__all__ = ["components"]


@pytest.fixture
def wif_env(emulator, monkeypatch, tmp_path):
    """The emulator's connections and settings in this process's environment, as a deployment would have them."""
    wif_credentials.clear_cache()
    info = emulator.info
    for key, value in info["env"].items():
        monkeypatch.setenv(key, value)
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield info
    wif_credentials.clear_cache()

