"""The emulator's ID-token signing key: RS256 JWTs, published like Google's own certificates.

Google signs ID tokens with rotating RSA keys and publishes them at ``https://www.googleapis.com/oauth2/v1/certs``
(``{kid: PEM certificate}``, what ``google.oauth2.id_token.verify_token`` reads by default) and
``https://www.googleapis.com/oauth2/v3/certs`` (a JWKS). The emulator does the same with one key per emulator,
made on first use (an RSA key takes tens of milliseconds to generate), so that tests verify ID tokens the way a
Cloud Run service would.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
from typing import Any


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWTs and JWKS write every part (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_integer(value: int, length: int | None = None) -> str:
    """A JWK integer (RFC 7518 section 6): big-endian, in ``length`` bytes (EC coordinates) or as few as it takes."""
    return b64url(value.to_bytes(length or (value.bit_length() + 7) // 8, "big"))


class IdTokenSigner:
    """One RSA key: signs JWTs and describes its public half as PEM certificates and as a JWKS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Any = None
        self._certificate_pem = ""
        self.kid = ""

    def _ensure(self) -> Any:
        with self._lock:
            if self._key is None:
                from cryptography import x509
                from cryptography.hazmat.primitives import hashes, serialization
                from cryptography.hazmat.primitives.asymmetric import rsa
                from cryptography.x509.oid import NameOID

                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)
                name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gcp-wif-emulator id tokens")])
                now = dt.datetime.now(dt.timezone.utc)
                certificate = (
                    x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
                    .sign(key, hashes.SHA256())
                )
                self._certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
                self.kid = hashlib.sha1(public_der).hexdigest()  # noqa: S324 - a key id, not a security measure
                self._key = key
            return self._key

    def sign(self, claims: dict[str, Any]) -> str:
        """``claims`` as a compact RS256 JWT whose header names this key."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        key = self._ensure()
        header = {"alg": "RS256", "kid": self.kid, "typ": "JWT"}
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)

    def certificates(self) -> dict[str, str]:
        """``{kid: PEM certificate}``, the shape of Google's ``/oauth2/v1/certs``."""
        self._ensure()
        return {self.kid: self._certificate_pem}

    def jwks(self) -> dict[str, Any]:
        """The shape of Google's ``/oauth2/v3/certs``."""
        numbers = self._ensure().public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                          "n": b64url_integer(numbers.n), "e": b64url_integer(numbers.e)}]}
