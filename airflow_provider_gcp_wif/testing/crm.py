"""Emulated Cloud Resource Manager: ``GET /v1/projects/<number or id>`` (what ``gcloud``-style doctors call to
turn a project number into an id)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import api_errors as errors
from .iam import bearer_token
from .state import fingerprint, rfc3339

if TYPE_CHECKING:
    from .state import EmulatorState


def get_project(state: EmulatorState, log: dict[str, Any], project: str, authorization: str | None
                ) -> dict[str, Any]:
    bearer = bearer_token(authorization)
    if bearer:
        log["token_fingerprint"] = fingerprint(bearer)
    caller = state.live_token(bearer)
    if caller is None:
        raise errors.unauthenticated("cloudresourcemanager.googleapis.com",
                                     "google.cloudresourcemanager.v1.Projects.GetProject")
    log["principal"] = caller.principal
    config = state.snapshot()
    if project not in (config["project_id"], config["project_number"]):
        raise errors.google_error(403, "PERMISSION_DENIED", "The caller does not have permission")
    return {"projectNumber": config["project_number"], "projectId": config["project_id"],
            "lifecycleState": "ACTIVE", "name": config["project_id"],
            "createTime": rfc3339(0, millis=True), "parent": {"type": "organization", "id": "0"}}
