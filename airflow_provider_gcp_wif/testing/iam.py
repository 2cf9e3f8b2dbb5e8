"""Emulated IAM Service Account Credentials: ``generateAccessToken`` and ``generateIdToken``.

ID tokens are RS256 JWTs signed by the emulator's key (:mod:`.signing`), verifiable against its certificates.

Order of checks: bearer (401) -> API enabled -> request arguments (400 INVALID_ARGUMENT) -> permission along the
chain ``delegates + [target]`` (403, also for a service account that does not exist) -> target disabled
(400 FAILED_PRECONDITION) -> lifetime over an hour without the org policy (400).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from . import api_errors as errors
from .state import IssuedToken, fingerprint, rfc3339

if TYPE_CHECKING:
    from .state import EmulatorState

SERVICE = "iamcredentials.googleapis.com"
_EMAIL = re.compile(r"^[a-z0-9][a-z0-9._\-]*@[a-z0-9][a-z0-9.\-]*$")
_DELEGATE = re.compile(r"^projects/-/serviceAccounts/([^/]+)$")
_LIFETIME = re.compile(r"^(\d+)(\.\d+)?s$")
_SCOPE = re.compile(r"^https://www\.googleapis\.com/auth/[A-Za-z0-9_.\-/]+$")
MAX_LIFETIME = 3600
ISSUER = "https://accounts.google.com"
MAX_EXTENDED_LIFETIME = 43200

ACCESS_TOKEN_ROLES = {"roles/iam.workloadIdentityUser", "roles/iam.serviceAccountTokenCreator", "roles/owner",
                      "roles/editor"}
ID_TOKEN_ROLES = {"roles/iam.workloadIdentityUser", "roles/iam.serviceAccountTokenCreator",
                  "roles/iam.serviceAccountOpenIdTokenCreator", "roles/owner", "roles/editor"}
BROAD_SCOPES = {"https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/iam"}


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


class ServiceAccountCredentials:
    """One ``generateAccessToken`` / ``generateIdToken`` call."""

    def __init__(self, state: EmulatorState, log: dict[str, Any]) -> None:
        self.state = state
        self.log = log

    def handle(self, method: str, email: str, authorization: str | None, body: bytes) -> dict[str, Any]:
        rpc = "GenerateAccessToken" if method == "generateAccessToken" else "GenerateIdToken"
        rpc_name = f"google.iam.credentials.v1.IAMCredentials.{rpc}"
        bearer = bearer_token(authorization)
        if bearer:
            self.log["token_fingerprint"] = fingerprint(bearer)
        caller = self.state.live_token(bearer)
        if caller is None:
            raise errors.unauthenticated(SERVICE, rpc_name)
        self.log["principal"] = caller.principal
        config = self.state.snapshot()
        if SERVICE in config.get("disabled_services", []):
            raise errors.service_disabled(SERVICE, "IAM Service Account Credentials API",
                                          config["project_number"])
        if caller.kind == "federated" and not BROAD_SCOPES & set(caller.scopes):
            raise errors.scope_insufficient(SERVICE, rpc_name)

        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise errors.invalid_argument() from None
        if not isinstance(request, dict) or not _EMAIL.match(email):
            raise errors.invalid_argument()
        delegates = self._delegates(request.get("delegates"))
        if method == "generateAccessToken":
            scopes = self._scopes(request.get("scope"))
            lifetime = self._lifetime(request.get("lifetime"))
            self._authorize(caller, [*delegates, email], ACCESS_TOKEN_ROLES, errors.get_access_token_denied,
                            config)
            if config["service_accounts"][email].get("disabled"):
                raise errors.failed_precondition()
            if lifetime > MAX_LIFETIME and email not in config["org_policy"].get("lifetime_extension", []):
                raise errors.lifetime_over_an_hour(email)
            ttl = config["token_ttl"].get("iam") or lifetime
            value, token = self.state.issue_token(
                "service_account", email, frozenset({f"serviceAccount:{email}"}), scopes, ttl, email)
            self.log["issued_token_fingerprint"] = fingerprint(value)
            return {"accessToken": value, "expireTime": rfc3339(token.expires_at)}

        audience = request.get("audience")
        if not isinstance(audience, str) or not audience:
            raise errors.invalid_argument()
        self._authorize(caller, [*delegates, email], ID_TOKEN_ROLES, errors.get_open_id_token_denied, config)
        if config["service_accounts"][email].get("disabled"):
            raise errors.failed_precondition()
        return {"token": self._id_token(email, audience, bool(request.get("includeEmail")))}

    # -- arguments -----------------------------------------------------------------------------------------
    @staticmethod
    def _delegates(value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise errors.invalid_argument()
        emails = []
        for delegate in value:
            match = _DELEGATE.match(delegate) if isinstance(delegate, str) else None
            if not match or not _EMAIL.match(match.group(1)):
                raise errors.invalid_argument()
            emails.append(match.group(1))
        return emails

    @staticmethod
    def _scopes(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(
                isinstance(s, str) and (_SCOPE.match(s) or s in ("openid", "email", "profile")) for s in value):
            raise errors.invalid_argument()
        return tuple(value)

    @staticmethod
    def _lifetime(value: Any) -> float:
        if value is None:
            return MAX_LIFETIME
        match = _LIFETIME.match(value) if isinstance(value, str) else None
        if not match:
            raise errors.invalid_argument()
        seconds = float(match.group(1) + (match.group(2) or ""))
        if seconds <= 0 or seconds > MAX_EXTENDED_LIFETIME:
            raise errors.invalid_argument()
        return seconds

    # -- permission ----------------------------------------------------------------------------------------
    @staticmethod
    def _authorize(caller: IssuedToken, chain: list[str], roles: set[str], denied: Any,
                   config: dict[str, Any]) -> None:
        """Each hop must be allowed by the previous one: the caller on chain[0], then chain[i] on chain[i+1]."""
        members: frozenset[str] = caller.members
        for hop, email in enumerate(chain):
            account = config["service_accounts"].get(email)
            if account is None:
                raise denied()
            # a service account vouches for the next hop through Token Creator, not Workload Identity User
            allowed = roles if hop == 0 else roles - {"roles/iam.workloadIdentityUser"}
            if not any(binding["role"] in allowed and members & set(binding["members"])
                       for binding in account.get("bindings", [])):
                raise denied()
            members = frozenset({f"serviceAccount:{email}"})

    # -- ID token ------------------------------------------------------------------------------------------
    def _id_token(self, email: str, audience: str, include_email: bool) -> str:
        """An RS256 JWT signed by the emulator's key (published at ``/oauth2/v1/certs`` and ``/oauth2/v3/certs``),
        with the claims Google puts in service-account ID tokens."""
        now = int(self.state.now())
        claims: dict[str, Any] = {"aud": audience, "azp": str(self._unique_id(email)), "exp": now + 3600,
                                  "iat": now, "iss": ISSUER, "sub": str(self._unique_id(email))}
        if include_email:
            claims.update(email=email, email_verified=True)
        return self.state.id_token_signer.sign(claims)

    @staticmethod
    def _unique_id(email: str) -> int:
        """A stable 21-digit number per account, like a service account's ``uniqueId``."""
        return 10**20 + int(hashlib.sha256(email.encode()).hexdigest()[:15], 16)
