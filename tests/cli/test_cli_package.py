"""The cli/ package (issue #14): a command imports its own module only, and every name the single cli.py had lives
in the module of its command (issue #25: the package re-exports none of them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PACKAGE = "airflow_provider_gcp_wif.cli"
COMMANDS = ("token_command", "doctor_command", "setup_command", "mwaa_bundle_command")
HEAVY = ("airflow", "boto3", "botocore", "google.auth", "requests")
PROBE = """
import contextlib, io, json, sys
from airflow_provider_gcp_wif.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(json.loads(sys.argv[1]), out=io.StringIO(), err=io.StringIO())
print(json.dumps(sorted(sys.modules)))
"""
SETUP = ["setup", "--project-id", "wif-demo-project", "--project-number", "734501234567", "--aws-account-id",
         "123456789012", "--aws-role-name", "wif-role"]
#: Every top-level name of cli.py before the split that other code, tests and docs import (and the rest of its
#: public names): each lives in the package's own modules.
OLD_NAMES = (
    "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "DISTRIBUTION", "SUBJECT_LIMIT_BYTES", "MWAA_PLUGINS_DIR",
    "MWAA_IMAGE_PYTHON", "MWAA_IMAGE_PACKAGES", "MWAA_PLATFORM", "PLUGIN_MODULE_NAME", "PLUGIN_MODULE_SOURCE",
    "AWS_ROLE_MAPPING", "ATTRIBUTE_MAPPING", "SERVICES", "UsageError", "Source", "airflow_connection",
    "AIRFLOW3_SUBPROCESS_ADVICE", "in_airflow3_task_subprocess", "load_source", "cmd_token", "OK", "WARN", "FAIL",
    "SKIP", "Check", "api_base_url", "Doctor", "DoctorFailed", "doctor", "cmd_doctor", "AWS_PARTITIONS",
    "FEDERATIONS", "AWS_CLAIMS", "JWT_SIGNING_ALGORITHM", "JWT_MAX_DURATION_SECONDS", "JWT_POLICY_NAME",
    "MAX_SESSION_NAME", "SETUP_ENV_DEFAULTS", "SetupPlan", "build_setup_plan", "render_gcloud", "render_terraform",
    "AWS_FEDERATION_RESOURCE", "cmd_setup", "MWAA_BUNDLE_HELP", "build_wheel", "wheel_metadata", "MwaaImage",
    "mwaa_image", "download_dependency_wheels", "cmd_mwaa_bundle", "write_mwaa_bundle", "_parser", "one_line", "main",
)


def imported_after(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``gcp-wif ARGV``."""
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True,
                            timeout=120, check=True)
    return set(json.loads(result.stdout))


def loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_help_imports_no_command_module_and_nothing_heavy():
    modules = imported_after(["--help"])
    assert PACKAGE in modules
    assert [c for c in COMMANDS if f"{PACKAGE}.{c}" in modules] == []
    assert [h for h in HEAVY if loaded(modules, h)] == []


@pytest.mark.parametrize(("argv", "command"), [
    (SETUP, "setup_command"),
    (["setup", "--help"], None),
    (["mwaa-bundle", "--output", "/nonexistent/x", "--no-index"], "mwaa_bundle_command"),
])
def test_a_command_imports_its_own_module_only(argv, command):
    modules = imported_after(argv)
    assert [c for c in COMMANDS if f"{PACKAGE}.{c}" in modules] == ([command] if command else [])
    assert [h for h in ("airflow", "boto3", "botocore") if loaded(modules, h)] == []


def test_every_name_of_the_single_module_lives_in_a_module_of_the_package_which_reexports_none():
    import importlib

    modules = [importlib.import_module(name) for name in (PACKAGE, f"{PACKAGE}.common", *(f"{PACKAGE}.{c}" for c in (
        *COMMANDS, "setup_args", "setup_plan", "setup_writers")))]
    missing = [name for name in OLD_NAMES if not any(hasattr(module, name) for module in modules)]
    assert missing == []
    from airflow_provider_gcp_wif.cli.doctor_command import doctor

    assert callable(doctor) and doctor.__module__ == f"{PACKAGE}.doctor_command"
    package = modules[0]
    assert [name for name in ("doctor", "build_setup_plan", "api_base_url", "cmd_token", "write_mwaa_bundle",
                              "EXIT_OK", "Source") if hasattr(package, name)] == []


def test_python_dash_m_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", PACKAGE, "--help"], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0 and result.stdout.startswith("usage: gcp-wif ")
