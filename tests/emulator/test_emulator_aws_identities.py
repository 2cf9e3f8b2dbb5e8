"""The emulated AWS answers ``AssumeRoleWithWebIdentity`` unsigned, as real AWS does (EKS IRSA), while every
other action stays signature-checked; the identity fakes' credentials rotate and rotated-away keys expire."""

from __future__ import annotations

import time

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError


def unsigned_sts(info):
    return boto3.client("sts", endpoint_url=info["aws_endpoint"], region_name=info["aws_region"],
                        config=Config(signature_version=UNSIGNED))


def test_unsigned_assume_role_with_web_identity_is_answered_and_its_credentials_verify(emulator):
    info = emulator.info
    answer = unsigned_sts(info).assume_role_with_web_identity(
        RoleArn=info["role_arn"], RoleSessionName="irsa", WebIdentityToken="header.payload.signature")
    credentials = answer["Credentials"]
    signed = boto3.client("sts", endpoint_url=info["aws_endpoint"], region_name=info["aws_region"],
                          aws_access_key_id=credentials["AccessKeyId"],
                          aws_secret_access_key=credentials["SecretAccessKey"],
                          aws_session_token=credentials["SessionToken"])
    assert signed.get_caller_identity()["Arn"] == (
        f"arn:aws:sts::{info['aws_account_id']}:assumed-role/wif-role/irsa")
    forged = boto3.client("sts", endpoint_url=info["aws_endpoint"], region_name=info["aws_region"],
                          aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key="x" * 40,
                          aws_session_token=credentials["SessionToken"])
    with pytest.raises(ClientError) as caught:
        forged.get_caller_identity()
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


@pytest.mark.parametrize("call", ["get_caller_identity", "assume_role", "get_session_token"])
def test_every_other_unsigned_sts_action_is_refused(emulator, call):
    info = emulator.info
    arguments = {"assume_role": {"RoleArn": info["role_arn"], "RoleSessionName": "unsigned"}}.get(call, {})
    with pytest.raises(ClientError) as caught:
        getattr(unsigned_sts(info), call)(**arguments)
    assert caught.value.response["Error"]["Code"] == "MissingAuthenticationToken"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_container_credentials_rotate_and_rotated_away_keys_expire_at_aws(emulator):
    info = emulator.info
    vendor = emulator.identities.vendor
    vendor.set_ttl(2)
    url = info["aws_identity_sources"]["ecs"]["endpoint"]
    first = requests.get(url, timeout=10).json()
    # Real elapsed time, on purpose: the emulated ECS agent rotates on the wall clock (time.time()) and moto's STS
    # refuses expired keys on it, and neither takes an injected clock.
    time.sleep(1.2)  # past half-life: the next request rotates
    second = requests.get(url, timeout=10).json()
    assert second["AccessKeyId"] != first["AccessKeyId"]

    def caller(credentials):
        return boto3.client("sts", endpoint_url=info["aws_endpoint"], region_name=info["aws_region"],
                            aws_access_key_id=credentials["AccessKeyId"],
                            aws_secret_access_key=credentials["SecretAccessKey"],
                            aws_session_token=credentials["Token"]).get_caller_identity()

    assert caller(first)["Arn"].endswith("assumed-role/wif-role/execution-role")  # not yet past its Expiration
    time.sleep(1.5)  # past the first keys' Expiration (moto's wall clock, as above)
    with pytest.raises(ClientError) as caught:
        caller(first)
    assert caught.value.response["Error"]["Code"] == "ExpiredToken"
    assert caller(second)["Arn"].endswith("assumed-role/wif-role/execution-role")
    vendor.set_ttl(300)


def test_the_ready_line_names_each_identity_source_with_its_env_and_the_chosen_ttl():
    import json
    import signal
    import subprocess
    import sys
    import threading

    process = subprocess.Popen([sys.executable, "-m", "airflow_provider_gcp_wif.testing", "--aws-credential-ttl",
                                "42"], stdout=subprocess.PIPE, text=True)
    try:
        timer = threading.Timer(60, process.kill)
        timer.start()
        info = json.loads(process.stdout.readline())
        timer.cancel()
        sources = info["aws_identity_sources"]
        assert sources["credential_ttl_seconds"] == 42
        for name in ("ecs", "eks_pod_identity", "eks_irsa", "ec2_imds", "profile"):
            assert sources[name]["env"]["AIRFLOW_CONN_AWS_DEFAULT"] == "aws://", name
            assert sources[name]["env"]["AWS_ENDPOINT_URL_STS"] == info["aws_endpoint"], name
        served = requests.get(sources["ecs"]["env"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"], timeout=10).json()
        assert served["RoleArn"] == info["role_arn"]
        expires = time.mktime(time.strptime(served["Expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        assert 0 < expires - time.time() <= 43
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
