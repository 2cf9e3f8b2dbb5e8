"""``GcpWifHook``: the hook of ``gcp_wif`` connections.

Stock Google operators do not need it (their own hooks honour ``gcp_wif`` connections through
:mod:`airflow_provider_gcp_wif.extension`); it is what Airflow instantiates for the connection form and the Test
button, and what DAG authors may use for credentials directly.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

from airflow_provider_gcp_wif.constants import CONN_TYPE, DEFAULT_CONN_ID
from airflow_provider_gcp_wif.extension import activate
from airflow_provider_gcp_wif.integration import binding_of
from airflow_provider_gcp_wif.provider_info import CONN_FIELDS, HIDDEN_FIELDS, HOOK_NAME

activate()


class GcpWifHook(GoogleBaseHook):
    """A ``GoogleBaseHook`` whose credentials come from an Airflow AWS connection through Workload Identity
    Federation.

    Args:
        gcp_conn_id: a connection of type ``gcp_wif`` (default ``gcp_wif_default``).
        impersonation_chain: replaces the connection's ``impersonation_chain``.
        quota_project_id: replaces the connection's ``quota_project_id``.
    """

    conn_name_attr = "gcp_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(self, gcp_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id, **kwargs)

    # -- the connection form (Airflow 2.11, 3.0 and 3.1 read these; 3.2+ reads provider_info) ----------------

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, StringField
        from wtforms.validators import NumberRange, Optional

        widgets: dict[str, Any] = {}
        for name, field in CONN_FIELDS.items():
            label = lazy_gettext(field["label"])
            schema = field["schema"]
            if "integer" in schema["type"]:
                widgets[name] = IntegerField(
                    label,
                    description=field["description"],
                    validators=[Optional(), NumberRange(min=schema["minimum"], max=schema["maximum"])],
                    widget=BS3TextFieldWidget(),
                    default=schema.get("default"),
                )
            elif schema.get("format") == "multiline":
                widgets[name] = StringField(label, description=field["description"], widget=BS3TextAreaFieldWidget())
            else:
                # The default (aws_conn_id: aws_default) prefills the form as conn-fields does on Airflow 3.2+.
                widgets[name] = StringField(label, description=field["description"], widget=BS3TextFieldWidget(),
                                            default=schema.get("default"))
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": list(HIDDEN_FIELDS),
            "relabeling": {},
            "placeholders": {name: field["placeholder"] for name, field in CONN_FIELDS.items() if field["placeholder"]},
        }

    # -- ID tokens -----------------------------------------------------------------------------------------

    def get_id_token(self, audience: str) -> str:
        """An ID token for ``audience`` — the URL of a private Cloud Run service or Cloud Function, or an IAP client
        id — signed by Google for the connection's service account (the last of ``impersonation_chain``, or of the
        hook's own ``impersonation_chain`` argument), with its ``email`` claim. Send it as ``Authorization: Bearer
        <token>``.

        Cached per audience in the process and renewed ahead of expiry (Google's ID tokens last one hour); the
        token is registered with Airflow's secrets masker.

        Raises:
            WifConfigError: the connection is not of type ``gcp_wif``, or has no service account (Google's STS
                cannot issue ID tokens to the federated identity itself).
            WifExchangeError: a step of the exchange or ``generateIdToken`` failed; says which and the fix.
        """
        from airflow_provider_gcp_wif.errors import WifConfigError
        from airflow_provider_gcp_wif.id_tokens import get_id_token

        binding = binding_of(self)
        if binding is None:
            raise WifConfigError("conn_type", f"connection {self.gcp_conn_id!r} is not of type {CONN_TYPE!r}.",
                                 "use a gcp_wif connection (GcpWifHook(gcp_conn_id=...)).")
        return get_id_token(binding.credentials(), audience)

    # -- Test button ---------------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Run the real chain and say who this is on AWS and on Google, or which step failed and the fix.

        The exchange is always made anew, with credentials outside the process-wide cache: the API server or
        webserver that runs the Test button lives long, and a token cached there would hide a binding removed or a
        provider disabled since.
        """
        from google.auth.transport.requests import Request

        from airflow_provider_gcp_wif.credentials import WifCredentials
        from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError

        binding = binding_of(self)
        if binding is None:
            return False, f"Connection {self.gcp_conn_id!r} is not of type {CONN_TYPE!r}."
        aws_identity = binding.supplier.description
        try:
            WifCredentials(binding.settings, binding.supplier).force_refresh(Request())
            aws_identity = binding.supplier.caller_arn() or aws_identity
        except WifConfigError as err:
            return False, f"settings: {err}"
        except WifExchangeError as err:
            return False, f"{err.step}: {err.reason} Fix: {err.fix}"
        except Exception as err:  # noqa: BLE001 - the UI shows the message instead of a stack trace
            return False, f"{type(err).__name__}: {err}"
        settings = binding.settings
        google = settings.service_account or f"federated principal in pool {settings.pool_id} (direct access)"
        return True, f"{aws_identity} → {google}"
