"""The loopback endpoint that gives child processes their AWS credentials answers only on loopback, only under its
random capability, only while it is open, and with the supplier's current credentials."""

from __future__ import annotations

import urllib.parse

import pytest
import requests

from airflow_provider_gcp_wif.supplier import ENDPOINT_ROLE_NAME


def test_the_endpoint_serves_current_credentials_under_its_capability_only(role_supplier):
    supplier = role_supplier()
    with supplier.credential_endpoint() as url:
        parsed = urllib.parse.urlsplit(url)
        assert parsed.hostname == "127.0.0.1"
        capability = parsed.path.split("/")[1]
        assert len(capability) >= 43  # 32 random bytes, URL-safe base64
        assert requests.get(url, timeout=10).text == ENDPOINT_ROLE_NAME
        answer = requests.get(f"{url}/{ENDPOINT_ROLE_NAME}", timeout=10).json()
        expected = supplier.get_aws_security_credentials(None, None)
        assert (answer["AccessKeyId"], answer["SecretAccessKey"], answer["Token"]) == (
            expected.access_key_id, expected.secret_access_key, expected.session_token)
        origin = f"http://127.0.0.1:{parsed.port}"
        wrong = capability[:-1] + ("A" if capability[-1] != "A" else "B")
        for path in ("/latest/meta-data/iam/security-credentials", f"/latest/meta-data/iam/security-credentials/{ENDPOINT_ROLE_NAME}",
                     f"/{wrong}/latest/meta-data/iam/security-credentials/{ENDPOINT_ROLE_NAME}", f"/{capability}", "/"):
            response = requests.get(origin + path, timeout=10)
            assert response.status_code == 404 and expected.secret_access_key not in response.text, path
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
