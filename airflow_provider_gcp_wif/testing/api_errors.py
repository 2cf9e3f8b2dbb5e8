"""Google's error bodies, as catalogued in ERRORS.md (texts marked ``verbatim: yes`` there are copied exactly)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error response in Google's shape; handlers raise it, the server renders it."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


# -- Security Token Service (OAuth error shape) ---------------------------------------------------------------
INVALID_TARGET = (
    'The target service indicated by the "audience" parameters is invalid. This might either be because the '
    "pool or provider is disabled or deleted or because it doesn't exist."
)
AUDIENCE_NOT_FULL_RESOURCE_NAME = (
    'Invalid value for "audience". This value should be the full resource name of the Identity Provider.'
)
ATTRIBUTE_CONDITION_REJECTED = "The given credential is rejected by the attribute condition."
# Placeholder wording (no verbatim source): an attribute mapping whose evaluation fails for this credential.
ATTRIBUTE_MAPPING_FAILED = "Error evaluating the attribute mapping:"
SUBJECT_TOO_LONG = (
    "The size of mapped attribute google.subject exceeds the 127 bytes limit. Either modify your attribute "
    "mapping or the incoming assertion to produce a mapped attribute that is less than 127 bytes."
)
AWS_REQUEST_INVALID_FORMAT = "AWS request has invalid format."
SUBJECT_TOKEN_UNPARSEABLE = (
    "Invalid format of AWS credentials:Error at line 0:0: Unexpected end of stream : expected '{'\n"
)
AWS_ACCOUNT_MISMATCH = (
    "The AWS account ID of the given credential does not match the account configured on the provider."
)
INVALID_SCOPE = "The requested scope is invalid."


def oauth_error(error: str, description: str, status: int = 400) -> ApiError:
    return ApiError(status, {"error": error, "error_description": description})


def aws_rejection(code: str, message: str) -> ApiError:
    return oauth_error("invalid_grant",
                       f"Received invalid AWS response of type {code} with error message: {message}")


# -- Google API error shape ------------------------------------------------------------------------------------
def google_error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> ApiError:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return ApiError(code, {"error": error})


def internal_error() -> ApiError:
    return google_error(500, "INTERNAL", "Internal error encountered.")


def unavailable() -> ApiError:
    return google_error(503, "UNAVAILABLE", "The service is currently unavailable.")


def rate_limited(service: str, project_number: str) -> ApiError:
    return google_error(
        429, "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Generate credentials requests' and limit 'Generate credentials "
        f"requests per minute' of service '{service}' for consumer 'project_number:{project_number}'.",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
          "domain": "googleapis.com",
          "metadata": {"service": service, "consumer": f"projects/{project_number}"}}],
    )


def status_error(status: int, service: str, project_number: str) -> ApiError:
    """The body Google sends for an injected HTTP status."""
    if status == 429:
        return rate_limited(service, project_number)
    if status == 500:
        return internal_error()
    if status == 503:
        return unavailable()
    if status == 403 and service == "iamcredentials.googleapis.com":
        return get_access_token_denied()  # what a not-yet-propagated binding looks like
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
             409: "ABORTED", 502: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
    return google_error(status, names.get(status, "UNKNOWN"), f"Injected HTTP {status}.")


def service_disabled(service: str, title: str, project_number: str) -> ApiError:
    url = f"https://console.developers.google.com/apis/api/{service}/overview?project={project_number}"
    return google_error(
        403, "PERMISSION_DENIED",
        f"{title} has not been used in project {project_number} before or it is disabled. Enable it by "
        f"visiting {url} then retry. If you enabled this API recently, wait a few minutes for the action to "
        "propagate to our systems and retry.",
        [{"@type": "type.googleapis.com/google.rpc.Help",
          "links": [{"description": "Google developers console API activation", "url": url}]},
         {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
          "domain": "googleapis.com",
          "metadata": {"consumer": f"projects/{project_number}", "service": service}}],
    )


def unauthenticated(service: str, method: str) -> ApiError:
    return google_error(
        401, "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
        "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_EXPIRED",
          "domain": "googleapis.com", "metadata": {"service": service, "method": method}}],
    )


def scope_insufficient(service: str, method: str) -> ApiError:
    return google_error(
        403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
          "domain": "googleapis.com", "metadata": {"service": service, "method": method}}],
    )


def get_access_token_denied() -> ApiError:
    return google_error(
        403, "PERMISSION_DENIED",
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
          "domain": "iam.googleapis.com", "metadata": {"permission": "iam.serviceAccounts.getAccessToken"}}],
    )


def get_open_id_token_denied() -> ApiError:
    return google_error(
        403, "PERMISSION_DENIED",
        "Permission 'iam.serviceAccounts.getOpenIdToken' denied on resource (or it may not exist).",
    )


def invalid_argument() -> ApiError:
    return google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")


def lifetime_over_an_hour(email: str) -> ApiError:
    return google_error(
        400, "INVALID_ARGUMENT",
        f"Access tokens for service account {email} can not have lifetimes of more than 1 hour. Use the Org "
        "Policy Constraint constraints/iam.allowServiceAccountCredentialLifetimeExtension to allow up to 12 hours.",
    )


def failed_precondition() -> ApiError:
    return google_error(400, "FAILED_PRECONDITION", "Precondition check failed.")


# -- Cloud Storage JSON API error shape ------------------------------------------------------------------------
def storage_error(code: int, reason: str, message: str, **extra: str) -> ApiError:
    item = {"message": message, "domain": "global", "reason": reason, **extra}
    return ApiError(code, {"error": {"code": code, "message": message, "errors": [item]}})


def storage_unauthenticated() -> ApiError:
    return storage_error(401, "authError", "Invalid Credentials", locationType="header", location="Authorization")


def storage_forbidden(principal: str, permission: str, resource_kind: str) -> ApiError:
    return storage_error(
        403, "forbidden",
        f"{principal} does not have {permission} access to the Google Cloud Storage {resource_kind}. "
        f"Permission '{permission}' denied on resource (or it may not exist).",
    )
