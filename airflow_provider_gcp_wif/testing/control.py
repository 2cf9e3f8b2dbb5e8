"""``EmulatorControl``: a small client for the ``/_emulator/`` control plane, usable from any process."""

from __future__ import annotations

from typing import Any

from .defaults import AWS_ACCOUNT_ID, AWS_JWT_PROVIDER_ID, POOL_ID, PROVIDER_ID, aws_jwt_provider


class EmulatorControlError(RuntimeError):
    """The control plane refused a request (bad configuration, unknown control)."""


class EmulatorControl:
    """Drive a running emulator: configuration, request log, faults, clock, AWS credential expiry.

    Args:
        control_url: the ``control_url`` of the emulator's info line, e.g. ``http://127.0.0.1:PORT/_emulator``.
        timeout: seconds per control request.
    """

    def __init__(self, control_url: str, timeout: float = 30.0) -> None:
        self.control_url = control_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, action: str, payload: Any = None, params: dict[str, str] | None = None) -> Any:
        import requests

        response = requests.request(method, f"{self.control_url}/{action}", json=payload, params=params,
                                    timeout=self.timeout)
        if response.status_code != 200:
            raise EmulatorControlError(f"{method} /_emulator/{action} -> HTTP {response.status_code}: "
                                       f"{response.text}")
        return response.json()

    # -- state ---------------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The emulator's start-up line (endpoints, fixture identities, env)."""
        return self._call("GET", "info")

    def reset(self) -> None:
        """Back to the start-up configuration; clears request log, faults, clock offset, stored objects and
        expired AWS keys. Tokens already issued stay valid until they expire."""
        self._call("POST", "reset")

    def get_config(self) -> dict[str, Any]:
        return self._call("GET", "config")

    def configure(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Deep-merge ``patch`` into the configuration (objects merge, lists and scalars are replaced)."""
        return self._call("PATCH", "config", patch)

    def replace_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return self._call("PUT", "config", config)

    # -- request log ---------------------------------------------------------------------------------------
    def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Logged Google requests, oldest first; ``endpoint`` filters (``sts``, ``iam``,
        ``iam.generateAccessToken``, ``iam.generateIdToken``, ``storage``, ``crm``)."""
        return self._call("GET", "requests", params={"endpoint": endpoint} if endpoint else None)

    def counters(self) -> dict[str, Any]:
        """``{endpoint: count, ..., "by_principal": {principal: {endpoint: count}}}`` over the request log."""
        return self._call("GET", "counters")

    def clear_log(self) -> None:
        self._call("DELETE", "requests")

    # -- faults --------------------------------------------------------------------------------------------
    def inject_faults(self, endpoint: str, statuses: list[int] | None = None, rate: float | None = None,
                      kinds: list[str] | None = None, delay_seconds: float = 0.0, count: int | None = None,
                      seed: int | None = None, body: str | None = None,
                      content_type: str | None = None) -> dict[str, Any]:
        """Make the next requests to ``endpoint`` fail.

        ``statuses`` are answered in sequence (one request each), then the endpoint recovers. With ``rate``,
        each request fails with that probability (``seed`` makes it repeatable) until ``count`` faults fired.
        ``kinds``: ``status`` (Google error body with the status), ``delay`` (sleep ``delay_seconds``, then
        answer normally), ``reset`` (drop the connection), ``malformed`` (200 with truncated JSON), ``body``
        (the status with exactly ``body`` as ``content_type``: answers Google never documented, for tests of the
        client's handling of the unknown), ``bad_expiry``
        (the real answer, with a live token, whose ``expires_in`` / ``expireTime`` is not a valid value).
        """
        return self._call("POST", "faults", {"endpoint": endpoint, "statuses": statuses, "rate": rate,
                                             "kinds": kinds, "delay_seconds": delay_seconds, "count": count,
                                             "seed": seed, "body": body, "content_type": content_type})

    def clear_faults(self) -> None:
        """Inject no more faults; requests held by an injected delay are answered now."""
        self._call("DELETE", "faults")

    # -- time ----------------------------------------------------------------------------------------------
    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward: tokens expire, and signed subject tokens get stale."""
        self._call("POST", "clock", {"advance_seconds": seconds})

    def set_clock_offset(self, seconds: float) -> None:
        self._call("POST", "clock", {"offset_seconds": seconds})

    def set_token_ttl(self, sts: int | None = None, iam: int | None = None) -> None:
        """``sts``: lifetime of federated tokens (``expires_in``). ``iam``: lifetime of every service-account
        token, overriding the requested ``lifetime``. ``None`` leaves a value unchanged."""
        ttl = {k: v for k, v in (("sts", sts), ("iam", iam)) if v is not None}
        if ttl:
            self.configure({"token_ttl": ttl})

    def create_service_account_key(self, email: str) -> dict[str, Any]:
        """A new key file for ``email`` whose ``token_uri`` is the emulated OAuth 2.0 endpoint (``POST /token``),
        which verifies the JWT-bearer assertion's signature with the key's public half."""
        return dict(self._call("POST", "service_account_keys", {"email": email}))

    def revoke_tokens(self) -> None:
        """Forget every issued token (they answer 401 from now on)."""
        self._call("DELETE", "tokens")

    # -- IAM -----------------------------------------------------------------------------------------------
    def set_org_policy_lifetime_extension(self, emails: list[str]) -> None:
        """The accounts listed in ``constraints/iam.allowServiceAccountCredentialLifetimeExtension``."""
        self.configure({"org_policy": {"lifetime_extension": list(emails)}})

    def set_provider(self, *, pool_id: str = POOL_ID, provider_id: str = PROVIDER_ID, **fields: Any) -> None:
        """Change (or create) a provider: ``disabled``, ``deleted``, ``aws_account_id``, ``attribute_mapping``
        (``{"google.subject": "<CEL>", "attribute.<name>": "<CEL>", ...}``, or ``None`` for Google's default AWS
        mapping), ``attribute_condition`` (a CEL expression, the older ``{"aws_role_in": [...], "aws_account_in":
        [...], "arn_in": [...]}``, or ``None``), ``strict``, ``google_subject`` (shorthand with the default
        mapping: ``assertion.arn`` / ``aws_role`` / ``role_name``), ``oidc`` (``{"issuer_uri": str,
        "allowed_audiences": [str, ...], "jwks_json": str | None}``: an OIDC provider taking JWT subject tokens;
        its default mapping is ``google.subject = assertion.sub``)."""
        self.configure({"pools": {pool_id: {"providers": {provider_id: fields}}}})

    def trust_aws_issuer(self, *, provider_id: str = AWS_JWT_PROVIDER_ID, pool_id: str = POOL_ID,
                         account_id: str | None = None, allowed_audiences: list[str] | None = None,
                         attribute_mapping: dict[str, str] | None = None,
                         attribute_condition: str | bool | None = True) -> str:
        """One call: an OIDC provider trusting the emulated AWS account's outbound identity federation issuer
        (default: the trusted account), as :func:`.defaults.aws_jwt_provider` describes (mapping from AWS's JWT
        claims, ``attribute.aws_role`` as the sigv4 route maps it so the fixture's bindings apply, a condition
        pinning the account). The emulator starts with ``aws-jwt-fixture`` in the default pool already; this is
        for other accounts, pools, audiences, mappings or conditions, or after ``replace_config``. Returns the
        provider's audience (``//iam.googleapis.com/projects/<n>/.../providers/<id>``); GetWebIdentityToken's
        ``Audience`` is that with ``https:`` in front (Google's default allowed audience)."""
        provider = aws_jwt_provider(self.aws_issuer(account_id), account_id or AWS_ACCOUNT_ID, allowed_audiences,
                                    attribute_mapping, attribute_condition)
        # the mapping replaces the provider's (configure() merges objects)
        self.set_provider(pool_id=pool_id, provider_id=provider_id, attribute_mapping=None)
        self.set_provider(pool_id=pool_id, provider_id=provider_id, **provider)
        project_number = self.get_config()["project_number"]
        return (f"//iam.googleapis.com/projects/{project_number}/locations/global/workloadIdentityPools/{pool_id}"
                f"/providers/{provider_id}")

    def set_pool(self, disabled: bool, pool_id: str = POOL_ID, deleted: bool | None = None) -> None:
        patch: dict[str, Any] = {"disabled": disabled}
        if deleted is not None:
            patch["deleted"] = deleted
        self.configure({"pools": {pool_id: patch}})

    def add_service_account(self, email: str, disabled: bool = False) -> None:
        self.configure({"service_accounts": {email: {"disabled": disabled}}})

    def add_binding(self, service_account: str, role: str, member: str) -> None:
        """Grant ``role`` on ``service_account`` to ``member`` (creating the account if needed)."""
        account = self.get_config()["service_accounts"].get(service_account, {"disabled": False})
        bindings = account.get("bindings", [])
        for binding in bindings:
            if binding["role"] == role:
                if member not in binding["members"]:
                    binding["members"].append(member)
                break
        else:
            bindings.append({"role": role, "members": [member]})
        self.configure({"service_accounts": {service_account: {**account, "bindings": bindings}}})

    def remove_bindings(self, service_account: str) -> None:
        self.configure({"service_accounts": {service_account: {"bindings": []}}})

    # -- storage -------------------------------------------------------------------------------------------
    def set_bucket_iam(self, bucket: str, role: str, members: list[str]) -> None:
        """Set the members of ``role`` on ``bucket`` (an empty list removes the role)."""
        bucket_config = self.get_config()["buckets"].get(bucket) or {}
        bindings = [b for b in bucket_config.get("iam", []) if b["role"] != role]
        if members:
            bindings.append({"role": role, "members": list(members)})
        self.configure({"buckets": {bucket: {**bucket_config, "iam": bindings}}})

    def set_project_iam(self, bindings: list[dict[str, Any]]) -> None:
        """Replace the project-level grants (``[{"role": ..., "members": [...]}]``)."""
        self.configure({"project_iam": bindings})

    # -- Secret Manager ------------------------------------------------------------------------------------
    def add_secret_version(self, secret_id: str, data: str, iam: list[dict[str, Any]] | None = None) -> int:
        """Add a version holding ``data`` to ``secret_id`` (creating the secret); ``iam`` replaces the secret's
        grants (``[{"role": "roles/secretmanager.secretAccessor", "members": [...]}]``). Returns the version."""
        secret = self.get_config().get("secrets", {}).get(secret_id) or {}
        versions = [*secret.get("versions", []), data]
        self.configure({"secrets": {secret_id: {"versions": versions,
                                                "iam": secret.get("iam", []) if iam is None else iam}}})
        return len(versions)

    def set_secret_iam(self, secret_id: str, role: str, members: list[str]) -> None:
        """Set the members of ``role`` on ``secret_id`` (an empty list removes the role)."""
        secret = self.get_config().get("secrets", {}).get(secret_id) or {"versions": []}
        bindings = [b for b in secret.get("iam", []) if b["role"] != role]
        if members:
            bindings.append({"role": role, "members": list(members)})
        self.configure({"secrets": {secret_id: {**secret, "iam": bindings}}})

    # -- AWS -----------------------------------------------------------------------------------------------
    def expire_aws_credentials(self, access_key_id: str) -> None:
        """Emulated AWS answers requests signed with this key with ``ExpiredToken``."""
        self._call("POST", "aws/expire", {"access_key_id": access_key_id})

    def set_aws_outbound_federation(self, enabled: bool, account_id: str | None = None) -> dict[str, Any]:
        """Enable/disable IAM outbound identity federation (``GetWebIdentityToken``) in an emulated AWS account
        (default: the trusted one); returns ``{"account_id", "issuer", "enabled"}``. ``reset()`` restores the
        fixture: enabled in the trusted account, disabled in the untrusted one."""
        payload: dict[str, Any] = {"enabled": enabled}
        if account_id:
            payload["account_id"] = account_id
        return dict(self._call("POST", "aws/outbound_federation", payload))

    def aws_issuer(self, account_id: str | None = None) -> str:
        """The emulated AWS account's outbound identity federation issuer URL (the ``iss`` of its JWTs)."""
        params = {"account_id": account_id} if account_id else None
        return str(self._call("GET", "aws/outbound_federation", None, params)["issuer"])
