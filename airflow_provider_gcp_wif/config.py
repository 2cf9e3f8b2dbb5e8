"""``WifSettings``: the one place that turns loose settings into a validated, immutable description of an exchange.

Inputs, all funnelled through :meth:`WifSettings.from_extras`:

* a ``gcp_wif`` connection's extras (every key of DESIGN.md's table, also in the legacy ``extra__gcp_wif__<key>``
  form; the plain key wins when both are present, as on Airflow's Google Cloud connection);
* a credential-config JSON written by ``gcloud iam workload-identity-pools create-cred-config --aws`` or the Cloud
  console (extra ``credential_config``): its audience, token URL, impersonation URL, token lifetime, quota project
  and universe domain are used, its AWS ``credential_source`` is
  replaced by the AWS connection; explicit extras win over values from the file, except that an audience that
  disagrees with the file's is an error;
* the seed package's environment variables (:meth:`WifSettings.from_env`).

Validation happens before any network call, in :mod:`airflow_provider_gcp_wif.extras_parser`, and every failure is a
:class:`WifConfigError` naming the field and the fix. Empty strings count as "not set" (Airflow's forms save them for
untouched fields).

The endpoint grammar and the deployment's allow-list that every STS / IAM endpoint passes are in
:mod:`airflow_provider_gcp_wif.endpoints`; error messages show values as :mod:`airflow_provider_gcp_wif.excerpts`
does (truncated, URLs redacted).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_gcp_wif import fields
from airflow_provider_gcp_wif.constants import CLOUD_PLATFORM_SCOPE, LEGACY_PREFIX
from airflow_provider_gcp_wif.endpoints import deployment_allowed_hosts
from airflow_provider_gcp_wif.errors import WifConfigError
from airflow_provider_gcp_wif.extras_parser import STEPS, ExtrasParser

#: Every extras key, in the form's order (from :mod:`airflow_provider_gcp_wif.fields`).
KNOWN_KEYS: tuple[str, ...] = fields.KEYS

#: The seed package's variables (see the README's migration section) and the keys they feed.
SEED_ENV: dict[str, str] = fields.SEED_ENV


@dataclass(frozen=True)
class WifSettings:
    """A validated description of one AWS → Google exchange. Build it with :meth:`from_extras` or :meth:`from_env`;
    all fields are already checked and normalised.

    Attributes:
        audience: ``//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/X``.
        project_number, pool_id, provider_id: the three parts of the audience.
        aws_conn_id: the Airflow AWS connection that supplies the AWS identity.
        impersonation_chain: service accounts to impersonate in order; the last one's token is used. Empty means
            direct resource access with the federated token.
        project: default project id for operators (``None``: operators must name one).
        scopes: OAuth scopes of the tokens.
        lifetime_seconds: lifetime of the impersonated token (1-43200; over 3600 needs Google's org policy).
        quota_project_id: the billing/quota project, or ``None``.
        aws_region: region of the signed ``GetCallerIdentity``; ``None`` means "the AWS session's region".
        universe_domain: the Google universe.
        sts_endpoint: the full STS token URL.
        iam_endpoint: the IAM Credentials base URL (``<base>/v1/projects/-/serviceAccounts/...``).
        num_retries: retries for transient failures, as on the Google Cloud connection.
        federation: ``sigv4`` (a signed GetCallerIdentity request, for an AWS provider) or ``jwt`` (a JWT from AWS
            STS GetWebIdentityToken, for an OIDC provider trusting the AWS account's issuer).
        conn_id: the Airflow connection id the settings came from (for messages only).
    """

    audience: str
    project_number: str
    pool_id: str
    provider_id: str
    aws_conn_id: str = fields.default("aws_conn_id")
    impersonation_chain: tuple[str, ...] = fields.default("impersonation_chain")
    project: str | None = None
    scopes: tuple[str, ...] = fields.default("scope")
    lifetime_seconds: int = fields.default("lifetime_seconds")
    quota_project_id: str | None = None
    aws_region: str | None = None
    universe_domain: str = fields.default("universe_domain")
    sts_endpoint: str = fields.default("sts_endpoint")
    iam_endpoint: str = fields.default("iam_endpoint")
    num_retries: int = fields.default("num_retries")
    federation: str = fields.default("federation")
    conn_id: str | None = field(default=None, compare=False)

    # -- derived ---------------------------------------------------------------------------------------------

    @property
    def service_account(self) -> str | None:
        """The account whose token is used, or ``None`` for direct resource access."""
        return self.impersonation_chain[-1] if self.impersonation_chain else None

    @property
    def delegates(self) -> tuple[str, ...]:
        """The accounts between the federated identity and :attr:`service_account`."""
        return self.impersonation_chain[:-1]

    def impersonation_url(self, email: str) -> str:
        return f"{self.iam_endpoint}/v1/projects/-/serviceAccounts/{email}:generateAccessToken"

    def replace(self, **changes: Any) -> WifSettings:
        """A copy with ``changes`` (raw values, as in extras; empty means "not set") validated like the originals,
        by the same parser steps: only the changed fields are parsed, with those a change re-checks (a universe
        domain re-checks the audience and both endpoints; see ``Field.rechecks``). A changed endpoint or universe
        domain is checked against the deployment's allow-list (``AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS``); an
        unchanged one is not checked again.

        Raises:
            WifConfigError: naming the first changed field that is wrong, and the fix.
        """
        raw: dict[str, Any] = {key: getattr(self, key) for key in KNOWN_KEYS if hasattr(self, key)}
        raw["scope"] = ",".join(self.scopes)
        raw.update(changes)
        changed = {key.removeprefix(LEGACY_PREFIX) for key in changes} & set(KNOWN_KEYS)
        steps = {fields.BY_KEY[key].parser for key in changed}
        steps.update(fields.BY_KEY[again].parser for key in changed for again in fields.BY_KEY[key].rechecks)
        # The allow-list is read (from the deployment's environment) only when a step that checks it runs.
        allowed = None if steps & {"universe_domain", "sts_endpoint", "iam_endpoint"} else ()
        return dataclasses.replace(self, **ExtrasParser(raw, self.conn_id, allowed).parse(steps, current=self))

    def __repr__(self) -> str:
        return (
            f"WifSettings(conn_id={self.conn_id!r}, audience={self.audience!r}, aws_conn_id={self.aws_conn_id!r}, "
            f"impersonation_chain={self.impersonation_chain!r}, sts_endpoint={self.sts_endpoint!r})"
        )

    # -- constructors ----------------------------------------------------------------------------------------

    @classmethod
    def from_extras(
        cls,
        extras: Mapping[str, Any] | None,
        *,
        conn_id: str | None = None,
        allowed_endpoint_hosts: str | Iterable[str] | None = None,
    ) -> WifSettings:
        """Validate a connection's extras.

        Args:
            extras: the connection's extra dict (plain or ``extra__gcp_wif__``-prefixed keys).
            conn_id: the connection id, named in error messages.
            allowed_endpoint_hosts: the deployment's allow-list; ``None`` reads
                ``AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS``.

        Raises:
            WifConfigError: naming the first field that is wrong, and the fix.
        """
        return cls(**ExtrasParser(extras or {}, conn_id, allowed_endpoint_hosts).parse(STEPS), conn_id=conn_id)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> WifSettings:
        """Settings from the seed package's variables (``GCP_PROJECT_NUMBER``, ``GCP_WORKLOAD_ID``,
        ``GCP_WORKLOAD_PROVIDER``, ``GCP_SERVICE_ACCOUNT_EMAIL``, ``AWS_REGION``, ``TOKEN_LIFETIME``,
        ``TOKEN_SCOPES``, ``GCP_WIF_STS_ENDPOINT``, ``GCP_WIF_IAM_ENDPOINT``); errors name the variable."""
        env = os.environ if environ is None else environ
        extras = {key: env.get(var) for var, key in SEED_ENV.items() if env.get(var)}
        extras.update({k: v for k, v in overrides.items() if v is not None})
        names = {key: var for var, key in SEED_ENV.items()}
        try:
            return cls.from_extras(extras, allowed_endpoint_hosts=deployment_allowed_hosts(env))
        except WifConfigError as err:
            if err.field in names and err.field not in overrides:
                raise WifConfigError(names[err.field], err.problem, err.fix) from None
            raise


__all__ = ["CLOUD_PLATFORM_SCOPE", "KNOWN_KEYS", "WifSettings"]
