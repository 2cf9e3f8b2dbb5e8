"""Emulated Secret Manager: ``GET /v1/projects/<project>/secrets/<secret>/versions/<version>:access`` (REST).

Secrets live in the configuration (``"secrets": {secret_id: {"versions": [text, ...], "iam": [bindings]}}``; the
first text is version 1; ``None`` marks a destroyed version). Authorisation as on Cloud Storage: a live bearer token
from this emulator whose members hold a role granting ``secretmanager.versions.access`` on the secret or on the
project (``project_iam``). Answers in Google's API error shape: 401 for a missing or expired token; 403
``PERMISSION_DENIED`` without the permission (also for secrets that do not exist, as Google does when the caller
has no project-level access); 404 ``NOT_FOUND`` for a missing secret or version when the caller may read the
project's secrets, which Airflow's stock Secret Manager backend treats as "no such connection / variable".
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any

from . import api_errors as errors
from .iam import bearer_token
from .state import IssuedToken, fingerprint

if TYPE_CHECKING:
    from .state import EmulatorState

SERVICE = "secretmanager.googleapis.com"
RPC = "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion"
ACCESS_PATH = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/:]+):access$")
ACCESS_ROLES = {"roles/secretmanager.secretAccessor", "roles/secretmanager.admin", "roles/owner"}
_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def _crc32c(data: bytes) -> int:
    from .storage import crc32c

    return crc32c(data)


def access_secret_version(state: EmulatorState, log: dict[str, Any], project: str, secret_id: str, version: str,
                          authorization: str | None) -> dict[str, Any]:
    bearer = bearer_token(authorization)
    if bearer:
        log["token_fingerprint"] = fingerprint(bearer)
    caller = state.live_token(bearer)
    if caller is None:
        raise errors.unauthenticated(SERVICE, RPC)
    log["principal"] = caller.principal
    config = state.snapshot()
    if SERVICE in config.get("disabled_services", []):
        raise errors.service_disabled(SERVICE, "Secret Manager API", config["project_number"])
    if not _SECRET_ID.match(secret_id) or not (version == "latest" or version.isdigit()):
        raise errors.invalid_argument()
    resource = f"projects/{project}/secrets/{secret_id}/versions/{version}"
    if project not in (config["project_id"], config["project_number"]):
        raise _denied(resource)
    secret = config.get("secrets", {}).get(secret_id)
    may_read_project = _holds(caller, config.get("project_iam", []))
    if secret is None:
        if not may_read_project:
            raise _denied(resource)
        raise errors.google_error(404, "NOT_FOUND", f"Secret [projects/{config['project_number']}/secrets/"
                                                    f"{secret_id}] not found or has no versions.")
    if not may_read_project and not _holds(caller, secret.get("iam", [])):
        raise _denied(resource)
    versions: list[str | None] = list(secret.get("versions", []))
    if version == "latest":
        live = [number for number, text in enumerate(versions, start=1) if text is not None]
        if not live:
            raise errors.google_error(404, "NOT_FOUND", f"Secret [projects/{config['project_number']}/secrets/"
                                                        f"{secret_id}] not found or has no versions.")
        number = live[-1]
    else:
        number = int(version)
        if not 1 <= number <= len(versions):
            raise errors.google_error(404, "NOT_FOUND", f"Secret Version [projects/{config['project_number']}/"
                                                        f"secrets/{secret_id}/versions/{number}] not found.")
        if versions[number - 1] is None:
            raise errors.google_error(400, "FAILED_PRECONDITION",
                                      f"Secret Version [projects/{config['project_number']}/secrets/{secret_id}/"
                                      f"versions/{number}] is in DESTROYED state.")
    text = versions[number - 1]
    assert text is not None
    data = text.encode()
    return {"name": f"projects/{config['project_number']}/secrets/{secret_id}/versions/{number}",
            "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(_crc32c(data))}}


def _holds(caller: IssuedToken, bindings: list[dict[str, Any]]) -> bool:
    return any(binding["role"] in ACCESS_ROLES and caller.members & set(binding["members"]) for binding in bindings)


def _denied(resource: str) -> errors.ApiError:
    return errors.google_error(
        403, "PERMISSION_DENIED",
        f"Permission 'secretmanager.versions.access' denied for resource '{resource}' (or it may not exist).",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
          "domain": "secretmanager.googleapis.com",
          "metadata": {"permission": "secretmanager.versions.access", "resource": resource}}],
    )
