"""AWS partitions: the signed GetCallerIdentity goes to the partition's regional STS host (China regions use
amazonaws.com.cn), and emulated Google replays it from there."""

from __future__ import annotations

import json
import urllib.parse

import google.auth.transport.requests
import pytest

from airflow_provider_gcp_wif.credentials import get_credentials
from airflow_provider_gcp_wif.errors import WifExchangeError
from airflow_provider_gcp_wif.resource_names import sts_host
from airflow_provider_gcp_wif.supplier import Boto3Supplier
from airflow_provider_gcp_wif.token_service import assume_role_session

REQUEST = google.auth.transport.requests.Request()


@pytest.mark.parametrize(("region", "host"), [
    ("us-east-1", "sts.us-east-1.amazonaws.com"),
    ("us-gov-west-1", "sts.us-gov-west-1.amazonaws.com"),
    ("us-gov-east-1", "sts.us-gov-east-1.amazonaws.com"),
    ("cn-north-1", "sts.cn-north-1.amazonaws.com.cn"),
    ("cn-northwest-1", "sts.cn-northwest-1.amazonaws.com.cn"),
])
def test_each_partition_signs_for_its_regional_sts_host(region, host, emulator, settings_for, aws_env):
    settings = settings_for(aws_region=region, impersonation_chain=None)
    assert settings.aws_region == region  # the region check accepts GovCloud and China regions
    # moto keeps one partition's identities: the role is assumed there, the request is signed for `region`.
    supplier = Boto3Supplier(lambda: assume_role_session(aws_env["role_arn"], region=aws_env["aws_region"]),
                             region=region, identity_key=f"role-in-{region}", description=f"wif-role in {region}")
    credentials = get_credentials(settings, supplier)
    if region.startswith("us-east"):
        credentials.refresh(REQUEST)
        assert credentials.token
    else:
        # Emulated Google accepts the partition's host and replays the request to emulated AWS, which (moto) knows
        # no identities outside the aws partition: the answer is AWS's, not "AWS request has invalid format".
        with pytest.raises(WifExchangeError, match="InvalidClientTokenId"):
            credentials.refresh(REQUEST)
    assert sts_host(region) == host
    subject = json.loads(urllib.parse.unquote(credentials.chain.federated.retrieve_subject_token(REQUEST)))
    assert subject["url"].startswith(f"https://{host}?Action=GetCallerIdentity")
    assert {"key": "host", "value": host} in [{"key": h["key"].lower(), "value": h["value"]}
                                             for h in subject["headers"]]


@pytest.mark.parametrize(("region", "host"), [
    ("eu-west-1", "sts.eu-west-1.amazonaws.com"),
    ("us-gov-west-1", "sts.us-gov-west-1.amazonaws.com"),
    ("cn-north-1", "sts.cn-north-1.amazonaws.com.cn"),
])
def test_a_web_identity_token_the_worker_cannot_fetch_names_its_partitions_sts_host(region, host):
    """federation jwt: when the worker cannot reach STS, the fix names the host it must reach, the partition's own
    (the one the supplier calls), not the aws partition's name for a China region."""
    from airflow_provider_gcp_wif.diagnosis import translate_aws_error

    error = translate_aws_error(OSError("connection reset"), "AWS connection aws_default", region,
                                "https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/"
                                "providers/x")
    assert f"regional endpoint {host} " in error.fix, error.fix
    assert sts_host(region) == host
