"""Emulated Google STS: OIDC providers (a JWT subject token, e.g. one AWS ``GetWebIdentityToken`` minted).

A provider whose configuration carries ``"oidc": {"issuer_uri", "allowed_audiences", "jwks_json"}`` accepts
``subject_token_type`` ``urn:ietf:params:oauth:token-type:jwt`` / ``id_token``. Checks, in this order, each with the
text real Google STS answers (measured against real Google, see ``ERRORS.md``):

parse -> ``iss`` equals ``issuer_uri`` -> key by ``kid`` in the JWKS (``jwks_json``, else fetched from the issuer's
discovery document: loopback only) with an algorithm Google accepts (RS256, ES256; Google takes RSA and EC P-256
keys only, so an ES384 token finds no usable key) -> signature -> ``aud`` in ``allowed_audiences`` (empty: the
provider's ``https://iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<id>``,
with or without ``https:``)
-> ``iat`` present and not more than 60 s ahead, ``exp`` present and not more than 60 s past (the emulator clock)
-> attribute mapping over the claims -> google.subject <= 127 bytes -> attribute condition.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from typing import Any

from . import api_errors as errors

JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
OIDC_SUBJECT_TOKEN_TYPES = frozenset({JWT_TOKEN_TYPE, ID_TOKEN_TYPE})
CLOCK_SKEW_SECONDS = 60  # measured: iat +60 s accepted, +119 s refused; exp -59 s accepted, -61 s refused
SUPPORTED_ALGORITHMS = ("RS256", "ES256")
DEFAULT_MAPPING = {"google.subject": "assertion.sub"}

# Google's texts (real Google STS answers; sources in ERRORS.md)
AUDIENCE_MISMATCH = "The audience in ID Token [{aud}] does not match the expected audience."
ISSUER_MISMATCH = "The issuer in ID Token {iss} does not match the expected one in config: {expected}"
STALE = "ID Token issued at {iat} is stale to sign-in."
BAD_SIGNATURE = "Unable to verify the ID Token signature."
ISSUER_UNREACHABLE = "Error connecting to the given credential's issuer."
UNPARSEABLE = "Unable to parse the ID Token."  # not observed on real Google: the emulator's own wording
JWKS_CURVE_UNSUPPORTED = "Invalid JWKs: Only RSA, EC key types are supported."
ISSUER_NOT_HTTPS = "Invalid OIDC issuer URI. The scheme must be https."


# Hosts besides loopback whose http issuers the emulator trusts and fetches: the emulated AWS's own host when the
# emulator was started with allow_non_loopback (its issuer is http on that host).
_EMULATED_ISSUER_HOSTS: set[str] = set()


def trust_emulated_issuer_host(host: str) -> None:
    _EMULATED_ISSUER_HOSTS.add(host)


def _emulator_host(host: str) -> bool:
    from .bind import is_loopback

    return is_loopback(host) or host in _EMULATED_ISSUER_HOSTS


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def default_audience(pool_resource: str, provider_id: str, universe: str = "googleapis.com") -> str:
    return f"https://iam.{universe}/{pool_resource}/providers/{provider_id}"


def validate_config(oidc: Any, where: str) -> None:
    """The provider's ``oidc`` block, checked as ``gcloud ... create-oidc`` does (raises ``ValueError``)."""
    if not isinstance(oidc, dict):
        raise ValueError(f"{where}.oidc must be an object {{issuer_uri, allowed_audiences, jwks_json}}")
    issuer = oidc.get("issuer_uri")
    if not isinstance(issuer, str) or not issuer:
        raise ValueError(f"{where}.oidc.issuer_uri must be a URL")
    parsed = urllib.parse.urlsplit(issuer)
    if not parsed.netloc:
        raise ValueError(f"{where}.oidc.issuer_uri: Invalid OIDC issuer URI.")
    if parsed.scheme != "https" and not (parsed.scheme == "http" and _emulator_host(parsed.hostname or "")):
        raise ValueError(f"{where}.oidc.issuer_uri: {ISSUER_NOT_HTTPS} (the emulator also takes http on loopback)")
    audiences = oidc.get("allowed_audiences", [])
    if audiences is not None and (not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences)):
        raise ValueError(f"{where}.oidc.allowed_audiences must be a list of strings")
    if audiences and (len(audiences) > 10 or any(not 0 < len(a) <= 256 for a in audiences)):
        raise ValueError(f"{where}.oidc.allowed_audiences: at most 10 audiences of at most 256 characters")
    jwks = oidc.get("jwks_json")
    if jwks is not None:
        try:
            keys = json.loads(jwks)["keys"]
            assert isinstance(keys, list)
        except (TypeError, ValueError, KeyError, AssertionError):
            raise ValueError(f"{where}.oidc.jwks_json must be a JWKS document (JSON text with keys)") from None
        for key in keys:
            if (key.get("kty") == "EC" and key.get("crv") != "P-256") or key.get("kty") not in ("RSA", "EC"):
                raise ValueError(f"{where}.oidc.jwks_json: {JWKS_CURVE_UNSUPPORTED}")


def _invalid_grant(text: str) -> errors.ApiError:
    return errors.oauth_error("invalid_grant", text)


def _fetch_json(url: str) -> Any:
    host = urllib.parse.urlsplit(url).hostname or ""
    if not _emulator_host(host):  # the emulator never sends traffic anywhere but to itself
        raise _invalid_grant(ISSUER_UNREACHABLE)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback http(s) only
            return json.loads(response.read())
    except (OSError, ValueError):
        raise _invalid_grant(ISSUER_UNREACHABLE) from None


def issuer_jwks(oidc: dict[str, Any]) -> list[dict[str, Any]]:
    if oidc.get("jwks_json"):
        return list(json.loads(oidc["jwks_json"])["keys"])
    issuer = str(oidc["issuer_uri"]).rstrip("/")
    discovery = _fetch_json(f"{issuer}/.well-known/openid-configuration")
    jwks_uri = discovery.get("jwks_uri") if isinstance(discovery, dict) else None
    if not isinstance(jwks_uri, str):
        raise _invalid_grant(ISSUER_UNREACHABLE)
    jwks = _fetch_json(jwks_uri)
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise _invalid_grant(ISSUER_UNREACHABLE)
    return keys


def _public_key(jwk: dict[str, Any]) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def integer(value: str) -> int:
        return int.from_bytes(_b64decode(value), "big")

    if jwk.get("kty") == "RSA":
        return rsa.RSAPublicNumbers(integer(jwk["e"]), integer(jwk["n"])).public_key()
    if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        return ec.EllipticCurvePublicNumbers(integer(jwk["x"]), integer(jwk["y"]), ec.SECP256R1()).public_key()
    return None  # Google takes RSA and EC P-256 keys only


def _signature_valid(algorithm: str, key: Any, signing_input: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    try:
        if algorithm == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            return True
        if algorithm == "ES256" and isinstance(key, ec.EllipticCurvePublicKey) and len(signature) == 64:
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
            return True
    except InvalidSignature:
        return False
    return False


def verify(token: str, oidc: dict[str, Any], expected_default_audience: str, now: float) -> dict[str, Any]:
    """The JWT's claims if Google would accept it for this provider; else Google's ``invalid_grant``."""
    try:
        header_part, payload_part, signature_part = token.split(".")
        header = json.loads(_b64decode(header_part))
        claims = json.loads(_b64decode(payload_part))
        signature = _b64decode(signature_part)
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError
    except ValueError:
        raise _invalid_grant(UNPARSEABLE) from None

    expected_issuer = str(oidc["issuer_uri"])
    issuer = claims.get("iss")
    if issuer != expected_issuer:
        raise _invalid_grant(ISSUER_MISMATCH.format(iss="null" if issuer is None else issuer,
                                                    expected=expected_issuer))

    algorithm = header.get("alg")
    keys = [k for k in issuer_jwks(oidc) if isinstance(k, dict) and k.get("kid") == header.get("kid")]
    key = _public_key(keys[0]) if keys else None
    if key is None or algorithm not in SUPPORTED_ALGORITHMS:
        raise _invalid_grant(ISSUER_UNREACHABLE)
    if not _signature_valid(str(algorithm), key, f"{header_part}.{payload_part}".encode(), signature):
        raise _invalid_grant(BAD_SIGNATURE)

    audience = claims.get("aud")
    token_audiences = [str(a) for a in audience] if isinstance(audience, list) else (
        [] if audience is None else [str(audience)])
    # empty allowed_audiences: the provider's full resource name "with or without the HTTPS prefix" (Google's API
    # reference of WorkloadIdentityPoolProvider.oidc.allowedAudiences)
    allowed = list(oidc.get("allowed_audiences") or []) or [
        expected_default_audience, expected_default_audience[len("https:"):]]
    if not set(token_audiences) & set(allowed):
        raise _invalid_grant(AUDIENCE_MISMATCH.format(aud=", ".join(token_audiences)))

    issued_at, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued_at, (int, float)) or isinstance(issued_at, bool):
        raise _invalid_grant(STALE.format(iat="null"))
    if (not isinstance(expires, (int, float)) or isinstance(expires, bool)
            or issued_at > now + CLOCK_SKEW_SECONDS or expires < now - CLOCK_SKEW_SECONDS):
        raise _invalid_grant(STALE.format(iat=int(issued_at)))
    not_before = claims.get("nbf")
    if isinstance(not_before, (int, float)) and not_before > now + CLOCK_SKEW_SECONDS:
        raise _invalid_grant(STALE.format(iat=int(issued_at)))
    return claims
