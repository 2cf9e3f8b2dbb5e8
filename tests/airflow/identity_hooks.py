"""Run in a subprocess by test_aws_identity_sources.py: stock Google hooks through ``gcp_wif_default`` with
``aws_default`` = ``aws://`` and whatever AWS identity source the environment names.

``python identity_hooks.py SECONDS INTERVAL`` uploads, lists and reads back objects with ``GCSHook`` and lists
them with ``GCSAsyncHook`` (the triggerer's path) until SECONDS have passed (at least once), then prints one
JSON line: ``{"rounds", "failures", "objects"}``. A failure is recorded, not raised, so a long run reports all.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import traceback


def main() -> int:
    seconds, interval = float(sys.argv[1]), float(sys.argv[2])
    bucket = os.environ["IDENTITY_TEST_BUCKET"]
    prefix = os.environ["IDENTITY_TEST_PREFIX"]
    from airflow.providers.google.cloud.hooks.gcs import GCSAsyncHook, GCSHook

    import airflow_provider_gcp_wif.plugin  # noqa: F401 - what every Airflow component does at start

    async def async_token() -> str:
        token = await GCSAsyncHook(gcp_conn_id="gcp_wif_default").get_token()
        return str(await token.get())

    def async_list() -> list[str]:
        """The triggerer's path: the async hook's token, used for a Storage list."""
        import requests

        response = requests.get(f"{os.environ['STORAGE_EMULATOR_HOST']}/storage/v1/b/{bucket}/o",
                                params={"prefix": prefix}, timeout=30,
                                headers={"Authorization": f"Bearer {asyncio.run(async_token())}"})
        response.raise_for_status()
        return [item["name"] for item in response.json().get("items", [])]

    rounds, failures = 0, []
    names: list[str] = []
    deadline = time.monotonic() + seconds
    while True:
        try:
            hook = GCSHook(gcp_conn_id="gcp_wif_default")
            name = f"{prefix}{rounds:05d}.txt"
            hook.upload(bucket, name, data=f"round {rounds}")
            assert hook.download(bucket, name) == f"round {rounds}".encode()
            names = hook.list(bucket, prefix=prefix)
            assert name in names, names
            assert name in async_list()
        except Exception:  # noqa: BLE001 - reported in the summary line
            failures.append(traceback.format_exc(limit=3)[-1500:])
        rounds += 1
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)  # the pace of a deployment's tasks over real time: the soak spans AWS key rotations
    print(json.dumps({"rounds": rounds, "failures": failures, "objects": sorted(names)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
