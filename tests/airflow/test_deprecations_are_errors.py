"""Deprecations are errors in this suite (pyproject.toml's ``filterwarnings``): a deprecation of google-auth, of the
Google provider (GoogleBaseHook and its hooks), of the Amazon provider or of ours fails the test that meets it, while
the third-party noise the configuration names is ignored, and only where it names it.

Written for every MWAA image's pins (scripts/matrix.py runs tests/airflow with the same pyproject.toml): a call this
version does not deprecate skips its test rather than passing it."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("plugin_loaded")

#: What Python 3.12 says of datetime.utcnow(), the noise the configuration ignores from inside third parties.
UTCNOW = ("datetime.datetime.utcnow() is deprecated and scheduled for removal in a future version. Use timezone-aware "
          "objects to represent datetimes in UTC: datetime.datetime.now(datetime.UTC).")


def deprecations(call: Callable[[], Any]) -> list[warnings.WarningMessage]:
    """The deprecations ``call`` warns of on this version, every filter set aside (its own errors ignored)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with contextlib.suppress(Exception):  # only the warnings before its error matter here
            call()
    return [w for w in seen if issubclass(w.category, DeprecationWarning)]


def test_a_google_auth_deprecation_is_an_error():
    import google.auth

    def load() -> Any:
        return google.auth.load_credentials_from_dict({"type": "external_account"})

    if not deprecations(load):
        pytest.skip("this google-auth does not deprecate load_credentials_from_dict")
    with pytest.raises(DeprecationWarning, match="load_credentials_from_dict method is deprecated"):
        load()


def test_a_google_provider_deprecation_warned_at_its_caller_is_an_error(wif_env):
    """The provider warns with stacklevel=2: the warning is attributed to this test, not to the provider, so only a
    filter that does not name the warning's module can make it an error."""
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    hook = GCSHook(gcp_conn_id="gcp_wif_default")

    def listing() -> Any:
        return hook.list(wif_env["bucket"], delimiter=".json")

    seen = deprecations(listing)
    if not seen:
        pytest.skip("this Google provider does not deprecate GCSHook.list(delimiter=...)")
    assert seen[0].filename == __file__  # attributed to the caller
    with pytest.raises(DeprecationWarning, match="delimiter"):
        listing()


#: One warning of each kind pyproject.toml ignores, as the pins that emit it do: (message, the module it is
#: attributed to).
NAMED_NOISE = [
    (UTCNOW, "botocore.auth"),  # Python 3.12, botocore < 1.35
    (UTCNOW, "google.auth._helpers"),  # Python 3.12, google-auth < 2.30
    # Airflow 2.11: airflow.metrics.protocols at its import (stacklevel=2 at module level: importlib)
    ("Timer and timing metrics publish in seconds were deprecated. It is enabled by default from Airflow 3 onwards.",
     "importlib._bootstrap"),
    ("'_app_ctx_stack' is deprecated and will be removed in Flask 2.3.", "flask_sqlalchemy"),
    ("'_request_ctx_stack' is deprecated and will be removed in Flask 2.4.", "flask_appbuilder.widgets"),
    ("'locked_cached_property' is deprecated and will be removed in Flask 2.4. Use a lock inside the decorated "
     "function if locking is needed.", "flask_babel"),
    ("The '__version__' attribute is deprecated and will be removed in in a future version. Use feature detection or "
     "'importlib.metadata.version(\"marshmallow\")' instead.", "marshmallow_sqlalchemy.convert"),
    ("Deprecated API features detected! These feature(s) are not compatible with SQLAlchemy 2.0.",
     "flask_appbuilder.models.sqla"),
    ("ast.Str is deprecated and will be removed in Python 3.14; use ast.Constant instead", "werkzeug.routing.rules"),
    ("Attribute s is deprecated and will be removed in Python 3.14; use value instead", "werkzeug.routing.rules"),
    ("Attribute s is deprecated and will be removed in Python 3.14; use value instead", "ast"),
    ("Type google._upb._message.MessageMapContainer uses PyType_Spec with a metaclass that has custom tp_new. This is "
     "deprecated and will no longer be allowed in Python 3.14.", "importlib._bootstrap"),
]


@pytest.mark.parametrize(("message", "module"), NAMED_NOISE)
def test_the_named_noise_from_a_third_party_is_not_an_error(message, module):
    warnings.warn_explicit(message, DeprecationWarning, f"{module.replace('.', '/')}.py", 1, module=module)


@pytest.mark.parametrize("module", ["airflow_provider_gcp_wif.credentials", "tests.airflow.test_integration"])
def test_the_named_noise_from_our_code_or_our_tests_is_an_error(module):
    with pytest.raises(DeprecationWarning, match="utcnow"):
        warnings.warn_explicit(UTCNOW, DeprecationWarning, f"{module.replace('.', '/')}.py", 1, module=module)


def test_a_third_party_deprecation_the_configuration_does_not_name_is_an_error():
    with pytest.raises(DeprecationWarning, match="going away"):
        warnings.warn_explicit("this API is going away", DeprecationWarning, "botocore/auth.py", 1,
                               module="botocore.auth")
