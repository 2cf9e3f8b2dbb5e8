"""``CloudEmulator``: emulated AWS (moto) and emulated Google Cloud, started together."""

from __future__ import annotations

import json
import os
from typing import Any

from . import defaults
from .aws import DEFAULT_REGION, LONG_ROLE_NAME, NO_JWT_ROLE_NAME, AwsEmulator
from .bind import require_loopback
from .control import EmulatorControl
from .identities import AwsIdentitySources
from .server import GoogleCloudServer
from .state import EmulatorState


def load_config(config: dict[str, Any] | str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """A dict as is, or a JSON file path."""
    if config is None or isinstance(config, dict):
        return config
    with open(config, encoding="utf-8") as handle:
        return json.load(handle)


class CloudEmulator:
    """Emulated AWS + Google Cloud for tests and demos.

    Args:
        config: the declarative Google-side configuration (a dict, or a JSON file path), deep-merged over
            :data:`DEFAULT_CONFIG`; ``None`` for the default fixture.
        host: address to bind: loopback (127.0.0.0/8, ``::1``, ``localhost``); anything else raises
            :class:`~airflow_provider_gcp_wif.testing.bind.NonLoopbackHostError` unless ``allow_non_loopback``.
        port: port of the Google server; 0 picks a free one. Emulated AWS always takes a free port.
        aws_credential_ttl: lifetime (seconds) of the execution role's temporary credentials served by the AWS
            identity fakes (container credentials, Pod Identity, IMDS); see :mod:`.identities`.

    ``start()`` returns ``self``; ``info`` is the start-up JSON line of ``python -m
    airflow_provider_gcp_wif.testing``; ``control`` an :class:`EmulatorControl` on it.
    """

    def __init__(self, config: dict[str, Any] | str | os.PathLike[str] | None = None, host: str = "127.0.0.1",
                 port: int = 0, aws_region: str = DEFAULT_REGION, *, aws_credential_ttl: float = 300.0,
                 allow_non_loopback: bool = False) -> None:
        require_loopback(host, allow_non_loopback)
        self.state = EmulatorState(load_config(config))
        self.aws = AwsEmulator(host=host, region=aws_region, allow_non_loopback=allow_non_loopback)
        self.identities: AwsIdentitySources | None = None
        self._host = host
        self._aws_credential_ttl = aws_credential_ttl
        self.server = GoogleCloudServer(self.state, self.aws, host=host, port=port)
        self.info: dict[str, Any] = {}
        self._control: EmulatorControl | None = None
        self._started = False

    def start(self) -> CloudEmulator:
        if self._started:
            return self
        self.aws.start()
        try:
            self._add_aws_jwt_provider()
            self.identities = AwsIdentitySources(self.aws, host=self._host,
                                                 ttl_seconds=self._aws_credential_ttl).start()
            self.server.start()
        except BaseException:
            if self.identities is not None:
                self.identities.stop()
            self.aws.stop()
            raise
        self._started = True
        self.info = self._build_info()
        self.server.info = self.info
        self._control = EmulatorControl(self.info["control_url"])
        return self

    def _add_aws_jwt_provider(self) -> None:
        """The start-up configuration gets an OIDC provider ``aws-jwt-fixture`` (in the first pool) trusting the
        emulated trusted AWS account's issuer, unless the configuration names one: ``reset()`` keeps it."""
        from . import oidc

        assert self.aws.trusted is not None
        oidc.trust_emulated_issuer_host(self.aws.host)  # its http issuer, also when not on loopback
        pools = self.state.startup_config["pools"]
        pool = pools.get(next(iter(pools), ""))
        if pool is None or defaults.AWS_JWT_PROVIDER_ID in pool.get("providers", {}):
            return
        provider = defaults.aws_jwt_provider(self.aws.issuer_url(self.aws.trusted.account_id),
                                             self.aws.trusted.account_id)
        pool.setdefault("providers", {})[defaults.AWS_JWT_PROVIDER_ID] = provider
        self.state.reset()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            self.server.stop()
        finally:
            if self.identities is not None:
                self.identities.stop()
            self.aws.stop()

    def __enter__(self) -> CloudEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def control(self) -> EmulatorControl:
        if self._control is None:
            raise RuntimeError("CloudEmulator.start() first")
        return self._control

    def _build_info(self) -> dict[str, Any]:
        config = self.state.startup_config
        assert self.aws.trusted is not None and self.aws.untrusted is not None
        pool_id = next(iter(config["pools"]), defaults.POOL_ID)
        provider_id = next(iter(config["pools"].get(pool_id, {}).get("providers", {})), defaults.PROVIDER_ID)
        service_account = next(iter(config["service_accounts"]), defaults.SERVICE_ACCOUNT)
        bucket = next(iter(config["buckets"]), defaults.BUCKET)
        project_number = config["project_number"]
        base = self.server.url
        audience = (f"//iam.googleapis.com/projects/{project_number}/locations/global/workloadIdentityPools/"
                    f"{pool_id}/providers/{provider_id}")
        role_arn = f"arn:aws:iam::{self.aws.trusted.account_id}:role/wif-role"
        info: dict[str, Any] = {
            "aws_endpoint": self.aws.endpoint,
            "sts_endpoint": f"{base}/v1/token",
            "iam_endpoint": base,
            "storage_host": base,
            "crm_endpoint": base,
            "secret_manager_endpoint": base,
            "id_token_certs_url": f"{base}/oauth2/v1/certs",
            "control_url": f"{base}/_emulator",
            "aws_region": self.aws.region,
            "aws_account_id": self.aws.trusted.account_id,
            "aws_access_key_id": self.aws.trusted.access_key_id,
            "aws_secret_access_key": self.aws.trusted.secret_access_key,
            "role_arn": role_arn,
            "long_role_arn": f"arn:aws:iam::{self.aws.trusted.account_id}:role/{LONG_ROLE_NAME}",
            "no_jwt_role_arn": f"arn:aws:iam::{self.aws.trusted.account_id}:role/{NO_JWT_ROLE_NAME}",
            "aws_issuer_url": self.aws.issuer_url(self.aws.trusted.account_id),
            "untrusted_aws_account_id": self.aws.untrusted.account_id,
            "untrusted_aws_access_key_id": self.aws.untrusted.access_key_id,
            "untrusted_aws_secret_access_key": self.aws.untrusted.secret_access_key,
            "untrusted_role_arn": f"arn:aws:iam::{self.aws.untrusted.account_id}:role/wif-role",
            "project_id": config["project_id"],
            "project_number": project_number,
            "pool_id": pool_id,
            "provider_id": provider_id,
            "audience": audience,
            "jwt_provider_id": defaults.AWS_JWT_PROVIDER_ID,
            "jwt_audience": f"//iam.googleapis.com/projects/{project_number}/locations/global/workloadIdentityPools/"
                            f"{pool_id}/providers/{defaults.AWS_JWT_PROVIDER_ID}",
            "service_account": service_account,
            "target_service_account": defaults.TARGET_SERVICE_ACCOUNT
            if defaults.TARGET_SERVICE_ACCOUNT in config["service_accounts"] else None,
            "bucket": bucket,
        }
        assert self.identities is not None
        info["aws_identity_sources"] = self.identities.info()
        info["env"] = {
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
                "conn_type": "aws", "login": info["aws_access_key_id"],
                "password": info["aws_secret_access_key"],
                "extra": {"region_name": info["aws_region"], "endpoint_url": info["aws_endpoint"],
                          "role_arn": role_arn},
            }),
            "AIRFLOW_CONN_GCP_WIF_DEFAULT": json.dumps({
                "conn_type": "gcp_wif",
                "extra": {"aws_conn_id": "aws_default", "project_number": project_number, "pool_id": pool_id,
                          "provider_id": provider_id, "impersonation_chain": service_account,
                          "project": config["project_id"], "sts_endpoint": info["sts_endpoint"],
                          "iam_endpoint": info["iam_endpoint"]},
            }),
            "STORAGE_EMULATOR_HOST": base,
            "AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS": self.server.host,
            "AWS_ENDPOINT_URL_STS": self.aws.endpoint,
        }
        return info

