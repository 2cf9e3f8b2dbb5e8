"""The extension of ``GoogleBaseHook`` is guarded and reversible: the installed Google provider honours the contract
it checks; a provider that renames or re-signs a method leaves every other connection working and gives `gcp_wif`
connections a clear error; the import hook removes itself; `deactivate()` restores the exact originals; recognising a
`gcp_wif` connection costs no second secrets-backend lookup.

Written for every Google provider from 10.19.0 (MWAA's oldest image) on: `scripts/matrix.py` runs it in each image's
environment."""

from __future__ import annotations

import functools
import inspect
import json
import os
import subprocess
import sys
import textwrap
import types

import pytest

from airflow_provider_gcp_wif import extension
from airflow_provider_gcp_wif.errors import WifConfigError

from .connections import set_conn

WRAPPED = ("__init__", "get_credentials_and_project_id", "provide_gcp_credential_file_as_context",
           "provide_authorized_gcloud")

pytestmark = pytest.mark.usefixtures("plugin_loaded")


def run_python(code: str, env: dict[str, str] | None = None, path: str | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    if path:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [path, environment.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=180,
                          env=environment)


def last_json(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def wif_extra(info):
    return json.loads(info["env"]["AIRFLOW_CONN_GCP_WIF_DEFAULT"])["extra"]


# -- the contract, checked against the installed provider ------------------------------------------------------------


@pytest.mark.smoke  # every MWAA image: the guard, the contract and a simulated rename (issue 11)
def test_installed_provider_honours_the_contract_and_the_wrappers_keep_its_signatures():
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    assert GoogleBaseHook.__dict__.get("_gcp_wif_extended") is True, "the installed provider was refused"
    stock = {name: GoogleBaseHook.__dict__[name].__wrapped__ for name in WRAPPED}
    # What the contract promises, stated independently of the guard's code:
    init = inspect.signature(stock["__init__"]).parameters
    assert {"gcp_conn_id", "impersonation_chain"} <= set(init)
    assert all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for name, p in init.items() if name != "self")
    for name in WRAPPED[1:]:
        assert list(inspect.signature(stock[name]).parameters) == ["self"], name
    for name in WRAPPED:
        wrapper = GoogleBaseHook.__dict__[name]
        assert wrapper is not stock[name]
        assert inspect.signature(wrapper) == inspect.signature(stock[name]), name
        assert (wrapper.__name__, wrapper.__qualname__, wrapper.__doc__) == (
            stock[name].__name__, stock[name].__qualname__, stock[name].__doc__)
    # The guard accepts this provider's methods, and refuses them renamed or re-signed.
    stock_class = type("Stock", (GoogleBaseHook,), dict(stock))
    assert extension.contract_problems(stock_class) == []
    renamed = type("Renamed", (stock_class,), {"provide_authorized_gcloud": None})
    assert extension.contract_problems(renamed) == ["GoogleBaseHook.provide_authorized_gcloud is missing"]

    def resigned(self, scopes):
        return stock["get_credentials_and_project_id"](self)

    assert "takes arguments besides self" in extension.contract_problems(
        type("Resigned", (stock_class,), {"get_credentials_and_project_id": resigned}))[0]


def test_deactivate_restores_the_exact_originals_and_activate_extends_again():
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    stock = {name: GoogleBaseHook.__dict__[name].__wrapped__ for name in WRAPPED}
    extension.deactivate()
    try:
        assert {name: GoogleBaseHook.__dict__[name] for name in WRAPPED} == stock
        assert all(GoogleBaseHook.__dict__[name] is stock[name] for name in WRAPPED)
        assert "_gcp_wif_extended" not in GoogleBaseHook.__dict__
        extension.deactivate()  # twice is harmless
    finally:
        extension.activate()
    assert all(GoogleBaseHook.__dict__[name].__wrapped__ is stock[name] for name in WRAPPED)


def test_the_import_hook_removes_itself_once_it_has_fired_and_deactivate_restores():
    result = run_python("""
        import json, sys
        from airflow_provider_gcp_wif import extension
        import airflow_provider_gcp_wif.plugin
        finders = lambda: sum(isinstance(f, extension.PostImportFinder) for f in sys.meta_path)
        before = finders()
        from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
        after = finders()
        names = ["__init__", "get_credentials_and_project_id", "provide_gcp_credential_file_as_context",
                 "provide_authorized_gcloud"]
        stock = {n: GoogleBaseHook.__dict__[n].__wrapped__ for n in names}
        extension.deactivate()
        restored = all(GoogleBaseHook.__dict__[n] is stock[n] for n in names)
        print(json.dumps({"before": before, "after": after, "restored": restored}))
    """)
    assert last_json(result) == {"before": 1, "after": 0, "restored": True}


def test_deactivate_before_the_import_leaves_google_untouched():
    result = run_python("""
        import json, sys
        from airflow_provider_gcp_wif import extension
        import airflow_provider_gcp_wif.plugin
        extension.deactivate()
        from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
        print(json.dumps({"finders": sum(isinstance(f, extension.PostImportFinder) for f in sys.meta_path),
                          "wrapped": any(hasattr(GoogleBaseHook.__dict__[n], "__wrapped__")
                                         for n in ("__init__", "get_credentials_and_project_id"))}))
    """)
    assert last_json(result) == {"finders": 0, "wrapped": False}


# -- the constructor is checked by what it leaves on the hook, not by its bytecode ---------------------------------------

PROBE_WIF_EXTRA = {"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider",
                   "aws_conn_id": "aws_probe_absent"}


def provider_with_constructor(make_init):
    """A ``base_google`` whose ``GoogleBaseHook`` has the installed provider's methods and the constructor
    ``make_init(stock_init)`` builds, extended as the plugin extends the installed one."""
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    stock = {name: GoogleBaseHook.__dict__[name].__wrapped__ for name in WRAPPED}
    module = types.ModuleType("changed_base_google")
    module.GoogleBaseHook = type("GoogleBaseHook", (GoogleBaseHook,), {**stock, "__init__": make_init(stock["__init__"])})
    extension.extend(module)
    return module.GoogleBaseHook


def decorated_constructor(stock_init):
    @functools.wraps(stock_init)
    def __init__(self, *args, **kwargs):
        stock_init(self, *args, **kwargs)

    return __init__


def constructor_with_a_helper(stock_init):
    def configure(hook, gcp_conn_id, impersonation_chain, kwargs):
        stock_init(hook, gcp_conn_id=gcp_conn_id, impersonation_chain=impersonation_chain, **kwargs)

    def __init__(self, gcp_conn_id="google_cloud_default", impersonation_chain=None, **kwargs):
        configure(self, gcp_conn_id, impersonation_chain, kwargs)

    return __init__


def constructor_without_gcp_conn_id(stock_init):
    def __init__(self, gcp_conn_id="google_cloud_default", impersonation_chain=None, **kwargs):
        self.impersonation_chain = impersonation_chain
        self.source = types.SimpleNamespace()
        self.source.gcp_conn_id = gcp_conn_id  # the id moved off the hook; the names are all still there
        self.extras = self.get_connection(self.source.gcp_conn_id).extra_dejson

    return __init__


def constructor_with_unreadable_extras(stock_init):
    def __init__(self, gcp_conn_id="google_cloud_default", impersonation_chain=None, **kwargs):
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.extras = self.get_connection(self.gcp_conn_id).extra  # the JSON text, not the extras

    return __init__


def constructor_with_other_extras(stock_init):
    def __init__(self, gcp_conn_id="google_cloud_default", impersonation_chain=None, **kwargs):
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.connection = self.get_connection(self.gcp_conn_id)
        self.extras = {}  # the connection's extras are read elsewhere now

    return __init__


@pytest.mark.parametrize("make_init", [decorated_constructor, constructor_with_a_helper])
def test_a_constructor_decorated_or_split_into_a_helper_is_extended_and_binds_wif_connections(make_init, monkeypatch):
    from google.auth.credentials import AnonymousCredentials

    from airflow_provider_gcp_wif.credentials import WifCredentials

    set_conn(monkeypatch, "gcp_wif_probe", "gcp_wif", PROBE_WIF_EXTRA)
    set_conn(monkeypatch, "gcp_anon_probe", "google_cloud_platform", {"is_anonymous": True, "project": "anon"})
    hook_class = provider_with_constructor(make_init)
    assert hook_class.__dict__.get("_gcp_wif_extended") is True
    credentials, _ = hook_class(gcp_conn_id="gcp_wif_probe").get_credentials_and_project_id()
    assert isinstance(credentials, WifCredentials)
    credentials, project = hook_class(gcp_conn_id="gcp_anon_probe").get_credentials_and_project_id()
    assert isinstance(credentials, AnonymousCredentials) and project == "anon"


@pytest.mark.parametrize(("make_init", "problem"), [
    (constructor_without_gcp_conn_id, "no longer sets gcp_conn_id"),
    (constructor_with_unreadable_extras, "GoogleBaseHook.extras is a str"),
    (constructor_with_other_extras, "GoogleBaseHook.extras are not the extras of the connection 'gcp_wif_probe'"),
])
def test_a_constructor_that_no_longer_leaves_what_the_extension_reads_refuses_wif_connections(make_init, problem,
                                                                                             monkeypatch):
    set_conn(monkeypatch, "gcp_wif_probe", "gcp_wif", PROBE_WIF_EXTRA)
    set_conn(monkeypatch, "gcp_anon_probe", "google_cloud_platform", {"is_anonymous": True, "project": "anon"})
    hook_class = provider_with_constructor(make_init)
    with pytest.raises(WifConfigError) as caught:
        hook_class(gcp_conn_id="gcp_wif_probe")
    oldest, newest = extension.TESTED_GOOGLE_PROVIDERS
    assert caught.value.field == "conn_type" and caught.value.conn_id == "gcp_wif_probe"
    assert f"apache-airflow-providers-google {extension.google_provider_version()} is not supported" in str(caught.value)
    assert problem in str(caught.value) and f"tested {oldest} to {newest}" in str(caught.value)
    stock = hook_class(gcp_conn_id="gcp_anon_probe")  # any other connection: the constructor's own behaviour
    assert "_gcp_wif" not in stock.__dict__


# -- a Google provider that changed under us -------------------------------------------------------------------------

# The plugin is imported first, as Airflow does, and base_google after it: the mutation runs inside that import, right
# after base_google executes and before the extension looks at the class (the plugin's own import hook calls
# `extension.extend`) — as if the installed provider had shipped it.
MUTATING_IMPORT = """
    import logging, sys
    ERRORS = []

    class Recorder(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.ERROR:
                ERRORS.append(record.getMessage())

    logging.getLogger("airflow_provider_gcp_wif").addHandler(Recorder())
    STOCK = {}

    import airflow_provider_gcp_wif.plugin
    from airflow_provider_gcp_wif import extension

    assert "airflow.providers.google.common.hooks.base_google" not in sys.modules
    extend = extension.extend

    def mutated_then_extended(module):
        if not STOCK:  # the first time (later activations, e.g. GcpWifHook's import, extend the same class)
            mutate(module.GoogleBaseHook)
            STOCK.update({k: v for k, v in vars(module.GoogleBaseHook).items() if not k.startswith("__")})
            STOCK["__init__"] = vars(module.GoogleBaseHook)["__init__"]
        extend(module)

    extension.extend = mutated_then_extended
"""

MUTATIONS = {
    "renamed": """
        def mutate(cls):
            cls.provide_authorized_gcloud_v2 = cls.provide_authorized_gcloud
            del cls.provide_authorized_gcloud
    """,
    "re-signed": """
        def mutate(cls):
            stock = cls.get_credentials_and_project_id
            def get_credentials_and_project_id(self, scopes=None):
                return stock(self)
            cls.get_credentials_and_project_id = get_credentials_and_project_id
    """,
    "constructor changed": """
        def mutate(cls):
            stock = cls.__init__
            def __init__(self, *args, **kwargs):  # no named gcp_conn_id / impersonation_chain any more
                stock(self, *args, **kwargs)
            cls.__init__ = __init__
    """,
    # Whatever goes wrong inside the extension, the import of base_google must not fail.
    "extension crashes": """
        def mutate(cls):
            from airflow_provider_gcp_wif import extension
            def crash(hook_class):
                raise RuntimeError("boom")
            extension.contract_problems = crash
    """,
}

AFTER_MUTATION = """
    import json
    import airflow_provider_gcp_wif.plugin
    from airflow.providers.google.cloud.operators.gcs import GCSListObjectsOperator
    from airflow.providers.google.cloud.hooks.gcs import GCSHook
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
    from google.auth.credentials import AnonymousCredentials

    answer = {"errors": None, "untouched": None}
    keyed = GCSHook(gcp_conn_id="gcp_keyed")
    credentials, project = keyed.get_credentials_and_project_id()
    with keyed.provide_gcp_credential_file_as_context() as path:
        key_type = json.load(open(path))["type"]
    answer["keyed"] = [type(credentials).__module__, project, key_type]
    anonymous = GCSHook(gcp_conn_id="gcp_anon")
    answer["anonymous"] = [isinstance(anonymous.get_credentials_and_project_id()[0], AnonymousCredentials),
                           anonymous.list(sys.argv[1])]
    class TaskInstance:  # the console link's XCom push is all execute() needs from the context
        def xcom_push(self, *args, **kwargs):
            pass

    operator = GCSListObjectsOperator(task_id="t", bucket=sys.argv[1], gcp_conn_id="gcp_anon")
    # Google provider 20.x's StorageLink.persist also reads context["task"].
    answer["operator"] = operator.execute({"ti": TaskInstance(), "task_instance": TaskInstance(), "task": operator})
    refusals = []
    for build in (lambda: GCSHook(gcp_conn_id="gcp_wif_default"),
                  lambda: __import__("airflow_provider_gcp_wif.hooks.gcp_wif", fromlist=["x"]).GcpWifHook()):
        try:
            build()
            refusals.append(None)
        except Exception as err:
            refusals.append([type(err).__name__, getattr(err, "field", None), str(err)])
    answer["wif"] = refusals
    answer["errors"] = ERRORS
    answer["untouched"] = all(vars(GoogleBaseHook).get(k) is v for k, v in STOCK.items() if k != "__init__")
    answer["init_stock"] = vars(GoogleBaseHook)["__init__"] is STOCK["__init__"]
    print(json.dumps(answer))
"""


@pytest.mark.smoke  # every MWAA image: the guard, the contract and a simulated rename (issue 11)
@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_changed_google_provider_breaks_no_google_operator_and_wif_connections_say_why(mutation, wif_env, emulator):
    from tests.airflow.connections import _service_account_key

    env = {
        "AIRFLOW_CONN_GCP_KEYED": json.dumps({"conn_type": "google_cloud_platform", "extra": {
            "keyfile_dict": json.dumps(_service_account_key()), "project": "keyed-project"}}),
        "AIRFLOW_CONN_GCP_ANON": json.dumps({"conn_type": "google_cloud_platform",
                                             "extra": {"is_anonymous": True, "project": "anon-project"}}),
    }
    code = (textwrap.dedent(MUTATING_IMPORT) + textwrap.dedent(MUTATIONS[mutation])
            + textwrap.dedent(AFTER_MUTATION))
    result = subprocess.run([sys.executable, "-c", code, wif_env["bucket"]], capture_output=True, text=True,
                            timeout=180, env={**os.environ, **env})
    answer = last_json(result)
    assert answer["keyed"] == ["google.oauth2.service_account", "keyed-project", "service_account"]
    assert answer["anonymous"] == [True, []] and answer["operator"] == []
    assert len(answer["errors"]) == 1, answer["errors"]
    version = extension.google_provider_version()
    if mutation == "extension crashes":
        assert "could not extend GoogleBaseHook" in answer["errors"][0]
    else:
        assert f"apache-airflow-providers-google {version} is not supported" in answer["errors"][0]
    assert answer["untouched"] is True and answer["init_stock"] is False  # only the fail-closed __init__
    for refusal in answer["wif"]:
        assert refusal is not None, "a gcp_wif connection must not fall back to Application Default Credentials"
        kind, field, message = refusal
        assert (kind, field) == ("WifConfigError", "conn_type")
        assert f"apache-airflow-providers-google {version} is not supported" in message
        oldest, newest = extension.TESTED_GOOGLE_PROVIDERS
        assert f"tested {oldest} to {newest}" in message


# -- one connection lookup per hook ------------------------------------------------------------------------------------

COUNTING_BACKEND = '''
import os
from airflow.secrets import BaseSecretsBackend

LOOKUPS = []


class CountingBackend(BaseSecretsBackend):
    """Serves PROBE_CONN_<ID> and counts every lookup, as a remote secrets backend would bill them."""

    def get_conn_value(self, conn_id):
        LOOKUPS.append(conn_id)
        return os.environ.get("PROBE_CONN_" + conn_id.upper())
'''


def test_each_hook_costs_one_secrets_backend_lookup(wif_env, tmp_path):
    (tmp_path / "counting_backend.py").write_text(COUNTING_BACKEND)
    env = {
        "AIRFLOW__SECRETS__BACKEND": "counting_backend.CountingBackend",
        "PROBE_CONN_PROBE_WIF": json.dumps({"conn_type": "gcp_wif", "extra": wif_extra(wif_env)}),
        "PROBE_CONN_PROBE_GOOGLE": json.dumps({"conn_type": "google_cloud_platform",
                                               "extra": {"is_anonymous": True, "audience": "look-alike"}}),
    }
    result = run_python("""
        import json
        import airflow_provider_gcp_wif.plugin
        from airflow.providers.google.cloud.hooks.gcs import GCSHook
        from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
        from airflow_provider_gcp_wif.integration import binding_of
        import counting_backend
        counts = {}
        for conn_id in ("probe_wif", "probe_google"):
            for hook_class in (GCSHook, BigQueryHook):
                del counting_backend.LOOKUPS[:]
                hook = hook_class(gcp_conn_id=conn_id)
                own = counting_backend.LOOKUPS.count(conn_id)
                counts[f"{hook_class.__name__} {conn_id}"] = [own, len(counting_backend.LOOKUPS) - own,
                                                             binding_of(hook) is not None]
        print(json.dumps(counts))
    """, env, path=str(tmp_path))
    # [lookups of the hook's own connection, other lookups, bound to WIF]. The one other lookup of a gcp_wif hook
    # is its AWS connection, read at hook creation so that shared credentials follow the AWS connection's content
    # (issue 9, test_changed_aws_connection.py); the AWS session is then built from that very connection, so
    # AwsBaseHook makes no lookup of its own at refresh time.
    assert last_json(result) == {
        "GCSHook probe_wif": [1, 1, True], "BigQueryHook probe_wif": [1, 1, True],
        "GCSHook probe_google": [1, 0, False], "BigQueryHook probe_google": [1, 0, False],
    }
