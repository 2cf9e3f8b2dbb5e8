"""A test-only trigger proving that the triggerer authenticates on its own through a ``gcp_wif`` connection.

Under ``STORAGE_EMULATOR_HOST`` the stock GCS triggers (gcloud-aio-storage) send no token at all, so this trigger
takes the stock path a deferrable Google operator's trigger takes to its credentials —
``GCSAsyncHook(...).get_token()`` then ``await token.get()`` — and uses the token itself against the emulated
Cloud Storage JSON API. Lives outside the DAGs folder so the triggerer imports it from PYTHONPATH. Heavy imports are at module level,
as in the stock trigger modules: the triggerer imports trigger classes itself, and ``run`` does no blocking import.

Importing it installs :mod:`loop_guard` in the process that runs the triggers (when ``GCP_WIF_LOOP_GUARD_REPORT``
is set): every blocking call our code makes on that process's event loop is written to the report.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import loop_guard
from airflow.providers.google.cloud.hooks.gcs import GCSAsyncHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

try:  # Airflow 3
    from airflow.sdk import BaseOperator
except ImportError:  # Airflow 2.11
    from airflow.models.baseoperator import BaseOperator

loop_guard.install()


class TokenProofTrigger(BaseTrigger):
    def __init__(self, bucket: str, gcp_conn_id: str = "gcp_wif_default", delay: float = 10.0) -> None:
        super().__init__()
        self.bucket = bucket
        self.gcp_conn_id = gcp_conn_id
        self.delay = delay

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "bucket": self.bucket, "gcp_conn_id": self.gcp_conn_id, "delay": self.delay,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Firing within seconds of the deferral races the scheduler (Airflow 3 marks the resumed task failed when
        # the deferring run's executor event arrives after the reschedule): let the scheduler catch up first.
        await asyncio.sleep(self.delay)
        try:
            hook = GCSAsyncHook(gcp_conn_id=self.gcp_conn_id)
            token = await hook.get_token()
            access_token = await token.get()
            url = f"{os.environ['STORAGE_EMULATOR_HOST'].rstrip('/')}/storage/v1/b/{self.bucket}"
            async with aiohttp.ClientSession() as session, session.get(
                url, headers={"Authorization": f"Bearer {access_token}"}
            ) as response:
                body = await response.text()
                status = response.status
        except Exception as err:  # noqa: BLE001 - the task reports what went wrong
            yield TriggerEvent({"status": "error", "error": f"{type(err).__name__}: {err}", "pid": os.getpid()})
            return
        yield TriggerEvent({"status": status, "body": body[:2000], "pid": os.getpid()})


class TokenProofOperator(BaseOperator):
    """Defers at once to :class:`TokenProofTrigger`; fails unless the trigger's request was answered 200."""

    template_fields = ("bucket",)

    def __init__(self, *, bucket: str, gcp_conn_id: str = "gcp_wif_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bucket = bucket
        self.gcp_conn_id = gcp_conn_id

    def execute(self, context: Any) -> None:
        self.defer(trigger=TokenProofTrigger(self.bucket, self.gcp_conn_id), method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") != 200:
            raise RuntimeError(f"the trigger's Cloud Storage request failed: {event}")
        self.log.info("trigger pid %s got bucket %s with its own token", event.get("pid"), self.bucket)
        return event
