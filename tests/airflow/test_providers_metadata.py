"""What Airflow itself discovers about the installed provider, each in a fresh Airflow process: the provider and
its hook in the CLI, the connection form as the UI of this Airflow version builds it, and the provider info against
Airflow's own schema."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from airflow_provider_gcp_wif.provider_info import CONN_FIELDS, CONN_TYPE, HIDDEN_FIELDS, HOOK_CLASS, HOOK_NAME
from tests.airflow_process import AIRFLOW_VERSION, airflow, airflow_environment

pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    return airflow_environment(None, tmp_path_factory.mktemp("airflow-home"))


def run_python(code: str, environment) -> dict:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environment, capture_output=True,
                            text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-10000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def json_output(stdout: str):
    """The JSON document in a CLI command's stdout (log lines may come before it)."""
    for line in stdout.splitlines():
        if line.startswith(("[{", "[]")):
            return json.loads(line)
    return json.loads(stdout[stdout.index("[{"):])


def test_cli_lists_the_provider_and_its_hook(environment):
    providers = airflow(["providers", "list", "--output", "json"], environment)
    packages = {entry["package_name"]: entry for entry in json_output(providers.stdout)}
    assert "airflow-provider-gcp-wif" in packages, sorted(packages)
    assert packages["airflow-provider-gcp-wif"]["version"] == "0.1.0"

    hooks = airflow(["providers", "hooks", "--output", "json"], environment)
    by_type = {entry["connection_type"]: entry for entry in json_output(hooks.stdout)}
    assert CONN_TYPE in by_type, sorted(by_type)
    assert by_type[CONN_TYPE]["class"] == HOOK_CLASS
    assert by_type[CONN_TYPE]["hook_name"] == HOOK_NAME
    assert by_type[CONN_TYPE]["package_name"] == "airflow-provider-gcp-wif"


def test_airflow_loads_the_plugin_from_its_entry_point(environment):
    """Airflow's plugin manager (as every component runs it at start-up) imports the ``airflow.plugins`` entry point
    and registers the plugin; importing it is what activates the integration."""
    result = airflow(["plugins", "--output", "json"], environment)
    plugins = {entry["name"]: entry for entry in json_output(result.stdout)}
    assert "gcp_wif" in plugins, sorted(plugins)
    assert "airflow-provider-gcp-wif" in plugins["gcp_wif"]["source"], plugins["gcp_wif"]
    assert "Failed to import plugin" not in result.stdout + result.stderr, result.stderr[-5000:]


def test_provider_info_validates_against_airflows_schema(environment):
    outcome = run_python(
        """
        import json, pathlib
        import airflow, jsonschema
        from importlib.metadata import entry_points
        (entry_point,) = [ep for ep in entry_points(group="apache_airflow_provider")
                          if ep.value.startswith("airflow_provider_gcp_wif.")]
        info = entry_point.load()()
        schema = json.loads((pathlib.Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
        errors = [error.message for error in jsonschema.Draft7Validator(schema).iter_errors(info)]
        print(json.dumps({"errors": errors, "keys": sorted(info)}))
        """,
        environment,
    )
    assert outcome["errors"] == []
    assert {"package-name", "connection-types", "config"} <= set(outcome["keys"])


def test_connection_form_as_this_airflow_version_builds_it(environment):
    """3.2+: the React UI reads conn-fields from provider info (HookMetaService, no hook import). 3.0/3.1: the
    same service, from the hook's wtforms widgets under mocked FAB. 2.11: the FAB UI, from the real widgets."""
    if AIRFLOW_VERSION >= (3,):
        outcome = run_python(
            """
            import json
            from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
            from airflow.providers_manager import ProvidersManager
            (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "gcp_wif"]
            behaviour = ProvidersManager().field_behaviours.get("gcp_wif")
            print(json.dumps({"meta": json.loads(meta.model_dump_json()), "behaviour": behaviour}))
            """,
            environment,
        )
        meta = outcome["meta"]
        assert meta["hook_class_name"] == HOOK_CLASS
        assert meta["hook_name"] == HOOK_NAME
        for field in HIDDEN_FIELDS:
            key = "url_schema" if field == "schema" else field
            assert meta["standard_fields"][key]["hidden"] is True, (field, meta["standard_fields"])
        extra = meta["extra_fields"]
        assert extra is not None and set(extra) == set(CONN_FIELDS), extra
        for name, field in CONN_FIELDS.items():
            schema = extra[name]["schema"]
            assert schema["title"] == field["label"]
            assert extra[name]["description"] == field["description"]
            expected_type = "integer" if "integer" in field["schema"]["type"] else "string"
            assert expected_type in schema["type"], (name, schema)
        assert extra["lifetime_seconds"]["value"] == 3600
        behaviour = outcome["behaviour"]
    else:
        outcome = run_python(
            """
            import json
            from airflow.providers_manager import ProvidersManager
            manager = ProvidersManager()
            widgets = {key: (info.field_name, info.field.field_class.__name__, str(info.field.args[0]),
                             info.hook_class_name, info.package_name)
                       for key, info in manager.connection_form_widgets.items() if key.startswith("extra__gcp_wif__")}
            print(json.dumps({"widgets": widgets, "behaviour": manager.field_behaviours.get("gcp_wif")}))
            """,
            environment,
        )
        widgets = outcome["widgets"]
        assert set(widgets) == {f"extra__gcp_wif__{name}" for name in CONN_FIELDS}, widgets
        for name, field in CONN_FIELDS.items():
            field_name, field_class, label, _hook_class, package = widgets[f"extra__gcp_wif__{name}"]
            assert field_name == name and label == field["label"] and package == "airflow-provider-gcp-wif"
            expected = "IntegerField" if "integer" in field["schema"]["type"] else "StringField"
            assert field_class == expected, (name, field_class)
        behaviour = outcome["behaviour"]
    assert behaviour is not None
    assert set(behaviour["hidden_fields"]) == set(HIDDEN_FIELDS)
    assert behaviour["placeholders"]["extra__gcp_wif__aws_conn_id"] == "aws_default"
