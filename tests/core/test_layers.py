"""The layers of docs/architecture.md hold: the core imports no Airflow (not even lazily, inside a function), the
emulator imports nothing of the provider, and every module of the package is placed in a layer (a new module has to
be placed here, and in the architecture's map).

Statically: every import statement of each module's source, at any depth. Dynamically: a fresh interpreter that
imports the whole core has no ``airflow`` module loaded (an indirect import through a third party shows here)."""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "airflow_provider_gcp_wif"

# docs/architecture.md: "The core (...) imports no Airflow".
CORE = {
    "__init__", "config", "extras_parser", "endpoints", "excerpts", "supplier", "credentials", "chain", "transport",
    "refresh", "forks", "botocore_sharing", "child_credentials", "errors", "diagnosis", "fixes", "resource_names",
    "token_service", "id_tokens", "host_cache", "masking", "fields", "constants", "provider_info",
}
# Airflow-facing: thin adapters of Airflow to the core, and the command line (which reads Airflow connections).
AIRFLOW_FACING = {
    "extension", "integration", "aws_connection", "options", "plugin", "hooks.__init__", "hooks.gcp_wif",
    "secrets.__init__", "secrets.secret_manager", "cli.__init__", "cli.__main__", "cli.common", "cli.doctor_command",
    "cli.mwaa_bundle_command", "cli.setup_args", "cli.setup_command", "cli.setup_plan", "cli.setup_writers",
    "cli.token_command",
}


def module_names() -> set[str]:
    return {".".join(path.relative_to(PACKAGE).with_suffix("").parts) for path in PACKAGE.rglob("*.py")
            if path.relative_to(PACKAGE).parts[0] != "testing"}


def imported(path: pathlib.Path) -> set[str]:
    """The absolute names each import statement of ``path`` names (relative imports resolved), at any depth."""
    package = ".".join(("airflow_provider_gcp_wif", *path.relative_to(PACKAGE).parent.parts))
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_every_module_is_placed_in_one_layer():
    assert not CORE & AIRFLOW_FACING
    assert module_names() == CORE | AIRFLOW_FACING, "place the new module in a layer (and in docs/architecture.md)"


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_imports_no_airflow_anywhere_in_its_source(module):
    names = imported(PACKAGE / (module.replace(".", "/") + ".py"))
    assert not [name for name in names if name == "airflow" or name.startswith("airflow.")]


def test_the_emulator_imports_nothing_of_the_provider():
    for path in (PACKAGE / "testing").rglob("*.py"):
        names = imported(path)
        outside = [name for name in names if name.startswith("airflow_provider_gcp_wif")
                   and not name.startswith("airflow_provider_gcp_wif.testing")]
        assert not outside, f"{path.name} imports {outside}"


def test_importing_the_whole_core_loads_no_airflow():
    code = (
        "import importlib, json, sys\n"
        f"for name in {sorted(CORE)!r}:\n"
        "    importlib.import_module('airflow_provider_gcp_wif' + ('' if name == '__init__' else '.' + name))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                            cwd=PACKAGE.parent)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
