"""The cold path's own overhead: botocore sessions our suppliers create share one process-wide data loader (service
models and endpoint files parsed once per process, not once per AWS session), while the sessions stay separate and
code outside them sees botocore as it was."""

from __future__ import annotations

import json
import threading

import boto3
import botocore.session

from airflow_provider_gcp_wif.supplier import Boto3Supplier


def _assuming_role_factory(info):
    """What ``AwsBaseHook.get_session`` does for a ``role_arn`` connection: a basic session, an STS client from it
    for AssumeRole, a new session for the assumed credentials."""

    def make():
        basic = boto3.session.Session(aws_access_key_id=info["aws_access_key_id"],
                                      aws_secret_access_key=info["aws_secret_access_key"],
                                      region_name=info["aws_region"])
        client = basic.client("sts", endpoint_url=info["aws_endpoint"])
        client.assume_role(RoleArn=info["role_arn"], RoleSessionName="cold-path")
        make.loaders.append(basic._session.get_component("data_loader"))
        return basic

    make.loaders = []
    return make


def test_cold_sessions_parse_botocore_data_once_per_process(aws_env, monkeypatch):
    parsed: list[int] = []
    original = json.loads

    def counting_loads(*args, **kwargs):
        parsed.append(1)
        return original(*args, **kwargs)

    factory = _assuming_role_factory(aws_env)
    Boto3Supplier(factory).session()  # the first one in this process may parse
    monkeypatch.setattr(json, "loads", counting_loads)
    for _ in range(3):
        Boto3Supplier(factory).session()
    assert parsed == [], "service models and endpoint files were parsed again for a new AWS session"
    assert len({id(loader) for loader in factory.loaders}) == 1


def test_sessions_stay_separate_and_other_code_keeps_its_own_loader(aws_env):
    factory = _assuming_role_factory(aws_env)
    first, second = Boto3Supplier(factory).session(), Boto3Supplier(factory).session()
    assert first is not second and first._session is not second._session
    outside = botocore.session.get_session()
    assert outside.get_component("data_loader") is not factory.loaders[0]

    seen = []
    thread = threading.Thread(target=lambda: seen.append(botocore.session.get_session().get_component("data_loader")))
    thread.start()
    thread.join()
    assert seen[0] is not factory.loaders[0]
