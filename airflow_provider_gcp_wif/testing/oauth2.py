"""Emulated Google OAuth 2.0 token endpoint (``POST /token``), JWT-bearer grant only: what a stock service-account
key file does (google-auth's ``service_account.Credentials``), so that the key path can be measured side by side
with keyless access (``make bench``) and tested offline.

Keys come from this emulator (``POST /_emulator/service_account_keys``): it generates an RSA key pair, keeps the
public half, and hands out a key file whose ``token_uri`` is this endpoint. The assertion's RS256 signature is
verified with that public key; ``iss`` must be the key's service account, ``aud`` the token endpoint, and the
account must exist and be enabled. Errors use Google's OAuth shape (``invalid_grant``, ``unsupported_grant_type``).
"""

from __future__ import annotations

import secrets
import urllib.parse
from typing import TYPE_CHECKING, Any

from . import api_errors as errors
from .state import fingerprint

if TYPE_CHECKING:
    from .state import EmulatorState

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
DEFAULT_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def create_key(state: EmulatorState, email: str, token_uri: str) -> dict[str, Any]:
    """A new key for ``email`` (which must be a configured service account), as a Google key file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    config = state.snapshot()
    if email not in config["service_accounts"]:
        raise KeyError(f"no service account {email!r} in the emulator's configuration")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key_id = secrets.token_hex(20)
    with state.lock:
        state.service_account_keys[key_id] = (email, public_pem)
    return {"type": "service_account", "project_id": config["project_id"], "private_key_id": key_id,
            "private_key": private_pem, "client_email": email, "client_id": str(int(key_id[:15], 16)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
            "universe_domain": "googleapis.com"}


class TokenEndpoint:
    """One ``POST /token`` call."""

    def __init__(self, state: EmulatorState, log: dict[str, Any], token_uri: str) -> None:
        self.state = state
        self.log = log
        self.token_uri = token_uri

    def handle(self, body: bytes) -> dict[str, Any]:
        from google.auth import exceptions, jwt

        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        if form.get("grant_type") != JWT_BEARER:
            raise errors.oauth_error("unsupported_grant_type", "Invalid grant_type: " + form.get("grant_type", ""))
        assertion = form.get("assertion", "")
        try:
            header = jwt.decode_header(assertion)
        except (ValueError, exceptions.GoogleAuthError):
            raise errors.oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) "
                                     "and in a reasonable timeframe.") from None
        with self.state.lock:
            known = self.state.service_account_keys.get(str(header.get("kid")))
        if known is None:
            raise errors.oauth_error("invalid_grant", "Invalid JWT Signature.")
        email, public_pem = known
        try:
            claims = jwt.decode(assertion, certs={str(header["kid"]): public_pem},
                                audience=[self.token_uri, GOOGLE_TOKEN_URI])
        except (ValueError, exceptions.GoogleAuthError) as err:
            reason = "Invalid JWT Signature." if "signature" in str(err).lower() else f"Invalid JWT: {err}"
            raise errors.oauth_error("invalid_grant", reason) from None
        account = self.state.snapshot()["service_accounts"].get(email)
        if claims.get("iss") != email or account is None or account.get("disabled"):
            raise errors.oauth_error("invalid_grant", "Invalid grant: account not found")
        self.log["principal"] = email
        scopes = tuple(str(claims.get("scope") or DEFAULT_SCOPE).split())
        ttl = self.state.snapshot()["token_ttl"].get("iam") or 3600
        value, _ = self.state.issue_token("service_account", email, frozenset({f"serviceAccount:{email}"}), scopes,
                                          ttl, email)
        self.log["issued_token_fingerprint"] = fingerprint(value)
        return {"access_token": value, "expires_in": int(ttl), "token_type": "Bearer"}
