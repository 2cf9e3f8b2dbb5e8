"""One task-like process for the host token cache tests: build the shared credentials for one (settings, AWS
identity), optionally wait for a common start moment, authorize one request, print one JSON line.

Run as ``python -m tests.reliability.host_cache_worker '<json>'`` with the keys: ``info`` (the emulator's info),
``identity`` (``"role"``, ``"user"``, or ``"ambient"``: boto3's default chain behind a fixed identity source, as a
keyless AWS connection ``aws://`` is), ``aws_env`` (the process's own ``AWS_*`` variables instead of the
inherited ones), ``extras`` (settings overrides), ``cache_dir`` (``null`` = process cache),
``barrier_dir`` (wait there for the file ``go`` after writing ``ready-<pid>``, or ``null``), ``airflow`` (true: through a stock ``GCSHook`` and the deployment's
``[gcp_wif]`` settings in the environment, instead of the core API), ``clock_offset_seconds`` (core API only: the
credentials' clock runs this far ahead of real time, as the emulator's clock is set by the test).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import time
from pathlib import Path


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def main() -> None:
    spec = json.loads(sys.argv[1])
    info = spec["info"]
    if spec.get("aws_env") is not None:  # this process's own identity source, alone
        for name in [name for name in os.environ if name.startswith("AWS_")]:
            del os.environ[name]
        os.environ.update(spec["aws_env"])
    import google.auth.transport.requests

    from airflow_provider_gcp_wif import masking

    announced: list[str] = []
    masking.add_listener(lambda value: announced.append(_fingerprint(value)))
    request = google.auth.transport.requests.Request()

    if spec.get("airflow"):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        import airflow_provider_gcp_wif.plugin  # noqa: F401 - what every Airflow process does at start-up

        def credentials():
            return GCSHook(gcp_conn_id="gcp_wif_default").get_credentials_and_project_id()[0]
    else:
        from airflow_provider_gcp_wif.credentials import get_credentials
        from airflow_provider_gcp_wif.host_cache import HostTokenCache
        from airflow_provider_gcp_wif.refresh import utcnow
        from airflow_provider_gcp_wif.supplier import Boto3Supplier
        from airflow_provider_gcp_wif.token_service import assume_role_session
        from tests.fixtures import make_settings

        settings = make_settings(info, **spec.get("extras", {}))
        if spec["identity"] == "role":
            arn = info["role_arn"]
            supplier = Boto3Supplier(lambda: assume_role_session(arn, region=info["aws_region"]),
                                     identity_key=f"role:{arn}", description=f"role {arn}")
        elif spec["identity"] == "ambient":
            import boto3

            # What aws_connection.aws_connection_supplier builds for aws_default = aws://: the key names the
            # connection's content, which says nothing of the identity boto3 resolves.
            supplier = Boto3Supplier(lambda: boto3.session.Session(), identity_key="aws-conn:aws_default:keyless",
                                     description="AWS connection 'aws_default'")
        else:
            supplier = Boto3Supplier.default_chain()
        host = HostTokenCache(spec["cache_dir"]) if spec.get("cache_dir") else None
        ahead = datetime.timedelta(seconds=spec.get("clock_offset_seconds", 0.0))

        def clock() -> datetime.datetime:
            return utcnow() + ahead

        def credentials():
            return get_credentials(settings, supplier, host_cache=host, clock=clock)

    waited = 0.0
    if spec.get("barrier_dir"):
        # Ready (everything imported, nothing exchanged yet): say so, then wait for the common start.
        barrier = Path(spec["barrier_dir"])
        (barrier / f"ready-{os.getpid()}").touch()
        started = time.monotonic()
        while not (barrier / "go").exists():
            time.sleep(0.002)
        waited = time.monotonic() - started
    headers: dict[str, str] = {}
    shared = credentials()
    own: dict[str, str] = {}
    if spec.get("report_arn"):  # who this process is, asked of AWS itself (the oracle of the identity tests)
        own["arn"] = shared.supplier.session().client("sts").get_caller_identity()["Arn"]
    try:
        shared.before_request(request, "GET", "http://storage.invalid/", headers)
    except Exception as err:
        if not spec.get("report_errors"):
            raise
        print(json.dumps({"error": getattr(err, "step", type(err).__name__), "exchanges": shared.exchange_count,
                          **own}))
        return
    token = headers["authorization"].removeprefix("Bearer ")
    print(json.dumps({"token": _fingerprint(token), "announced": _fingerprint(token) in announced,
                      "exchanges": shared.exchange_count, "waited": waited,
                      "imported_boto3": "boto3" in sys.modules, **own}))


if __name__ == "__main__":
    main()
