"""Mutable state of the emulated Google Cloud: configuration, clock, issued tokens, request log, faults.

Everything here is guarded by one lock; handlers read a consistent snapshot of the configuration per request.
Token values are never logged: the log keeps a short SHA-256 fingerprint.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import cel
from .defaults import deep_merge, default_config
from .signing import IdTokenSigner

ENDPOINTS = ("sts", "iam.generateAccessToken", "iam.generateIdToken", "storage", "crm", "secretmanager", "certs",
             "oauth2")
FAULT_KINDS = ("status", "delay", "reset", "malformed", "body", "bad_expiry")
LOG_LIMIT = 10_000


def fingerprint(token: str) -> str:
    """A short, non-reversible name for a token, safe to log."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def rfc3339(epoch: float, millis: bool = False) -> str:
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class IssuedToken:
    """A bearer token this emulator minted.

    kind: ``federated`` (from STS) or ``service_account`` (from generateAccessToken).
    principal: the name used in the request log: the ``principal://`` subject or the service-account email.
    members: every IAM member string the token's holder matches (``principal://``, ``principalSet://``,
    ``serviceAccount:``), used for bindings on service accounts, buckets and the project.
    """

    kind: str
    principal: str
    members: frozenset[str]
    scopes: tuple[str, ...]
    expires_at: float
    service_account: str | None = None


@dataclass
class FaultRule:
    """A fault to inject on requests to one endpoint (or ``*``, or a prefix such as ``iam``)."""

    endpoint: str
    statuses: list[int]
    rate: float | None
    kinds: list[str]
    delay_seconds: float
    remaining: float
    rng: random.Random
    fired: int = 0
    body: str = ""
    content_type: str = "application/json; charset=UTF-8"

    def matches(self, endpoint: str) -> bool:
        return self.endpoint in ("*", endpoint) or endpoint.startswith(self.endpoint + ".")

    def next_fault(self) -> tuple[str, int] | None:
        if self.remaining <= 0:
            return None
        if self.rate is not None and self.rng.random() >= self.rate:
            return None
        kind = self.kinds[self.fired % len(self.kinds)]
        status = self.statuses[self.fired % len(self.statuses)] if self.statuses else 503
        self.fired += 1
        self.remaining -= 1
        return kind, status


@dataclass
class StoredObject:
    data: bytes
    metadata: dict[str, Any]


@dataclass
class StoredBucket:
    name: str
    created: float
    objects: dict[str, StoredObject] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class ConfigError(ValueError):
    """The declarative configuration is malformed."""


def validate_config(config: dict[str, Any]) -> None:
    """Shallow structural checks, so a typo fails at configure time rather than as a puzzling 403 later."""
    if not isinstance(config, dict):
        raise ConfigError("config must be a JSON object")
    for key in ("project_id", "project_number"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise ConfigError(f"{key} must be a non-empty string")
    for key in ("pools", "service_accounts", "buckets", "org_policy", "token_ttl"):
        if not isinstance(config.get(key), dict):
            raise ConfigError(f"{key} must be an object")
    for pool_id, pool in config["pools"].items():
        if not isinstance(pool, dict) or not isinstance(pool.get("providers", {}), dict):
            raise ConfigError(f"pools.{pool_id} must be an object with a providers object")
        for provider_id, provider in pool.get("providers", {}).items():
            if not isinstance(provider, dict):
                raise ConfigError(f"pools.{pool_id}.providers.{provider_id} must be an object")
            where = f"pools.{pool_id}.providers.{provider_id}"
            condition = provider.get("attribute_condition")
            if isinstance(condition, str):
                try:
                    cel.parse(condition)
                except cel.CelError as error:
                    raise ConfigError(f"{where}.attribute_condition: {error}") from None
            elif condition is not None and (not isinstance(condition, dict) or set(condition)
                                            - {"aws_role_in", "aws_account_in", "arn_in"}):
                raise ConfigError(f"{where}.attribute_condition must be null, a CEL expression, or an object "
                                  "with aws_role_in / aws_account_in / arn_in lists")
            mapping = provider.get("attribute_mapping")
            if mapping is not None:
                if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
                    raise ConfigError(f"{where}.attribute_mapping must be null or an object of CEL expressions")
                try:
                    cel.check_mapping(mapping)
                except cel.CelError as error:
                    raise ConfigError(f"{where}.attribute_mapping: {error}") from None
            if provider.get("oidc") is not None:
                from . import oidc

                try:
                    oidc.validate_config(provider["oidc"], where)
                except ValueError as error:
                    raise ConfigError(str(error)) from None
            if provider.get("google_subject", "assertion.arn") not in ("assertion.arn", "aws_role", "role_name"):
                raise ConfigError("google_subject must be one of assertion.arn, aws_role, role_name")
    for email, account in config["service_accounts"].items():
        _validate_bindings(account.get("bindings", []), f"service_accounts.{email}.bindings")
    _validate_bindings(config.get("project_iam", []), "project_iam")
    for name, bucket in config["buckets"].items():
        _validate_bindings((bucket or {}).get("iam", []), f"buckets.{name}.iam")
    if not isinstance(config.get("secrets", {}), dict):
        raise ConfigError("secrets must be an object {secret_id: {versions, iam}}")
    for name, secret in config.get("secrets", {}).items():
        versions = secret.get("versions", []) if isinstance(secret, dict) else None
        if not isinstance(secret, dict) or not isinstance(versions, list) \
                or not all(v is None or isinstance(v, str) for v in versions):
            raise ConfigError(f"secrets.{name} must be {{\"versions\": [text or null, ...], \"iam\": [...]}}")
        _validate_bindings(secret.get("iam", []), f"secrets.{name}.iam")
    ttl = config["token_ttl"]
    for key in ("sts", "iam"):
        if ttl.get(key) is not None and (not isinstance(ttl[key], (int, float)) or ttl[key] <= 0):
            raise ConfigError(f"token_ttl.{key} must be null or a positive number of seconds")
    if not isinstance(config["org_policy"].get("lifetime_extension", []), list):
        raise ConfigError("org_policy.lifetime_extension must be a list of service-account emails")


def _validate_bindings(bindings: Any, where: str) -> None:
    if not isinstance(bindings, list):
        raise ConfigError(f"{where} must be a list of {{role, members}}")
    for binding in bindings:
        if not isinstance(binding, dict) or not isinstance(binding.get("role"), str) \
                or not isinstance(binding.get("members"), list):
            raise ConfigError(f"{where} entries must be {{\"role\": str, \"members\": [str]}}")


class EmulatorState:
    """Everything the emulated Google services remember."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        base = deep_merge(default_config(), config) if config else default_config()
        validate_config(base)
        self.lock = threading.RLock()
        self.startup_config = base
        self.config = copy.deepcopy(base)
        self.clock_offset = 0.0
        self.tokens: dict[str, IssuedToken] = {}
        self.log: list[dict[str, Any]] = []
        self.next_log_id = 1
        self.faults: list[FaultRule] = []
        # Set (and replaced) when the faults are cleared: requests an injected delay holds then go on at once.
        self.release_held = threading.Event()
        self.buckets: dict[str, StoredBucket] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.id_token_signer = IdTokenSigner()
        self.service_account_keys: dict[str, tuple[str, str]] = {}  # key id -> (email, public key PEM)
        self._create_configured_buckets()

    # -- clock ---------------------------------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    # -- configuration -------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.config)

    def replace_config(self, config: dict[str, Any]) -> None:
        validate_config(config)
        with self.lock:
            self.config = copy.deepcopy(config)
            self._create_configured_buckets()

    def patch_config(self, patch: dict[str, Any]) -> None:
        with self.lock:
            self.replace_config(deep_merge(self.config, patch))

    def reset(self) -> None:
        """Back to the start-up configuration: log, faults, clock offset, stored objects and uploads cleared.
        Issued tokens are kept (they stay valid until they expire, like real ones)."""
        with self.lock:
            self.config = copy.deepcopy(self.startup_config)
            self.clock_offset = 0.0
            self.log.clear()
            self._clear_faults()
            self.buckets.clear()
            self.uploads.clear()
            self._create_configured_buckets()

    def _create_configured_buckets(self) -> None:
        for name in self.config.get("buckets", {}):
            if name not in self.buckets:
                self.buckets[name] = StoredBucket(name=name, created=self.now())

    # -- tokens --------------------------------------------------------------------------------------------
    def issue_token(self, kind: str, principal: str, members: frozenset[str], scopes: tuple[str, ...],
                    lifetime: float, service_account: str | None = None) -> tuple[str, IssuedToken]:
        prefix = "ya29.emu-fed-" if kind == "federated" else "ya29.emu-sa-"
        value = prefix + secrets.token_urlsafe(32)
        token = IssuedToken(kind, principal, members, scopes, self.now() + lifetime, service_account)
        with self.lock:
            self._purge_expired_tokens()
            self.tokens[value] = token
        return value, token

    def live_token(self, value: str | None) -> IssuedToken | None:
        if not value:
            return None
        with self.lock:
            token = self.tokens.get(value)
        if token is None or token.expires_at <= self.now():
            return None
        return token

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def _purge_expired_tokens(self) -> None:
        # keep recently expired ones around: they still answer "expired" (401) rather than vanishing
        horizon = self.now() - 86_400
        for value in [v for v, t in self.tokens.items() if t.expires_at < horizon]:
            del self.tokens[value]

    # -- request log ---------------------------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            entry["id"] = self.next_log_id
            self.next_log_id += 1
            self.log.append(entry)
            if len(self.log) > LOG_LIMIT:
                del self.log[: len(self.log) - LOG_LIMIT]

    def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self.log
                    if endpoint is None or e["endpoint"] == endpoint or e["endpoint"].startswith(endpoint + ".")]

    def counters(self) -> dict[str, Any]:
        counts: dict[str, Any] = dict.fromkeys(ENDPOINTS, 0)
        by_principal: dict[str, dict[str, int]] = {}
        with self.lock:
            for entry in self.log:
                counts[entry["endpoint"]] = counts.get(entry["endpoint"], 0) + 1
                principal = entry.get("principal") or "unknown"
                per = by_principal.setdefault(principal, {})
                per[entry["endpoint"]] = per.get(entry["endpoint"], 0) + 1
        counts["by_principal"] = by_principal
        return counts

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()

    # -- faults --------------------------------------------------------------------------------------------
    def add_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        endpoint = spec.get("endpoint")
        if not isinstance(endpoint, str) or not (endpoint == "*" or any(
                e == endpoint or e.startswith(endpoint + ".") for e in ENDPOINTS)):
            raise ConfigError(f"endpoint must be one of {', '.join(ENDPOINTS)}, 'iam' or '*'")
        statuses = [int(s) for s in spec.get("statuses") or []]
        rate = spec.get("rate")
        if rate is not None and not 0 <= float(rate) <= 1:
            raise ConfigError("rate must be between 0 and 1")
        kinds = list(spec.get("kinds") or ["status"])
        if unknown := set(kinds) - set(FAULT_KINDS):
            raise ConfigError(f"unknown fault kinds {sorted(unknown)}; use {', '.join(FAULT_KINDS)}")
        count = spec.get("count")
        if count is None:
            if rate is not None:
                count = float("inf")
            else:
                count = len(statuses) if statuses and kinds == ["status"] else max(len(statuses), 1)
        rule = FaultRule(endpoint=endpoint, statuses=statuses, rate=None if rate is None else float(rate),
                         kinds=kinds, delay_seconds=float(spec.get("delay_seconds") or 0.0),
                         remaining=float(count), rng=random.Random(spec.get("seed")),
                         body=str(spec.get("body") or ""),
                         content_type=str(spec.get("content_type") or "application/json; charset=UTF-8"))
        with self.lock:
            self.faults.append(rule)
        return self.describe_fault(rule)

    @staticmethod
    def describe_fault(rule: FaultRule) -> dict[str, Any]:
        return {"endpoint": rule.endpoint, "statuses": rule.statuses, "rate": rule.rate, "kinds": rule.kinds,
                "delay_seconds": rule.delay_seconds,
                "remaining": None if rule.remaining == float("inf") else int(rule.remaining),
                "fired": rule.fired}

    def next_fault(self, endpoint: str) -> tuple[str, int, float, FaultRule, threading.Event] | None:
        """The fault to inject on this request, if any: kind, status, delay, its rule, and the event that ends
        the delay early (the one of the faults it was taken from, read under the same lock)."""
        with self.lock:
            for rule in self.faults:
                if rule.matches(endpoint) and rule.remaining > 0:
                    fault = rule.next_fault()
                    if fault is not None:
                        return fault[0], fault[1], rule.delay_seconds, rule, self.release_held
            self.faults = [r for r in self.faults if r.remaining > 0]
        return None

    def clear_faults(self) -> None:
        """No more faults; requests held by an injected delay go on now."""
        with self.lock:
            self._clear_faults()

    def _clear_faults(self) -> None:
        self.faults.clear()
        self.release_held.set()
        self.release_held = threading.Event()
