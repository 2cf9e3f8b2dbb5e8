"""`gcp-wif mwaa-bundle`: plugins.zip (the provider's wheel + a plugins-folder module) and requirements.txt."""

from __future__ import annotations

import email.parser
import hashlib
import zipfile
from pathlib import Path

import pytest

from airflow_provider_gcp_wif import __version__
from airflow_provider_gcp_wif.cli.common import PLUGIN_MODULE_NAME

from .running import run_cli


def wheel_names(plugins: Path) -> list[str]:
    with zipfile.ZipFile(plugins) as bundle:
        return sorted(n for n in bundle.namelist() if n.endswith(".whl"))


def metadata_of_wheel_inside(plugins: Path, wheel_name: str, tmp_path: Path):
    with zipfile.ZipFile(plugins) as bundle:
        (tmp_path / wheel_name).write_bytes(bundle.read(wheel_name))
    with zipfile.ZipFile(tmp_path / wheel_name) as wheel:
        names = wheel.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        return email.parser.Parser().parsestr(wheel.read(meta).decode()), wheel.read(entry_points).decode(), names


@pytest.fixture(scope="module")
def built_bundle(tmp_path_factory):
    """One bundle built from the source tree (the wheel is built once for this module)."""
    output = tmp_path_factory.mktemp("bundle")
    code, out, err = run_cli("mwaa-bundle", "--output", str(output))
    assert code == 0, err
    return output, out


@pytest.fixture
def provider_wheel(built_bundle, tmp_path) -> Path:
    """The provider's wheel taken out of the built bundle, as a user passes it back with ``--wheel``."""
    output, _ = built_bundle
    [name] = wheel_names(output / "plugins.zip")
    with zipfile.ZipFile(output / "plugins.zip") as bundle:
        (tmp_path / name).write_bytes(bundle.read(name))
    return tmp_path / name


def test_the_bundle_holds_the_provider_wheel_and_the_plugin_module(built_bundle, tmp_path):
    output, _ = built_bundle
    plugins = output / "plugins.zip"
    [wheel_name] = wheel_names(plugins)
    metadata, entry_points, files = metadata_of_wheel_inside(plugins, wheel_name, tmp_path)
    assert metadata["Name"] == "airflow-provider-gcp-wif" and metadata["Version"] == __version__
    assert "airflow_provider_gcp_wif/plugin.py" in files and "airflow_provider_gcp_wif/cli/__init__.py" in files
    # setup's output templates are package data
    assert {f"airflow_provider_gcp_wif/cli/templates/{name}" for name in ("setup.sh.tmpl", "setup.tf.tmpl",
                                                                          "org-policy.yaml.tmpl")} <= set(files)
    assert "gcp_wif = airflow_provider_gcp_wif.plugin:GcpWifPlugin" in entry_points
    assert "airflow_provider_gcp_wif.provider_info:get_provider_info" in entry_points
    with zipfile.ZipFile(plugins) as bundle:
        assert sorted(bundle.namelist()) == sorted([wheel_name, PLUGIN_MODULE_NAME])
        source = bundle.read(PLUGIN_MODULE_NAME).decode()
    namespace: dict = {}
    exec(compile(source, PLUGIN_MODULE_NAME, "exec"), namespace)
    from airflow_provider_gcp_wif.plugin import GcpWifPlugin

    assert namespace["GcpWifPlugin"] is GcpWifPlugin


def bundled_wheel_reference(plugins: Path) -> str:
    """The direct reference to the wheel in plugins.zip, at its MWAA path, with the sha256 of its bytes."""
    [name] = [n for n in wheel_names(plugins) if n.startswith("airflow_provider_gcp_wif-")]
    with zipfile.ZipFile(plugins) as bundle:
        digest = hashlib.sha256(bundle.read(name)).hexdigest()
    return f"airflow-provider-gcp-wif @ file:///usr/local/airflow/plugins/{name}#sha256={digest}"


def test_requirements_reference_the_bundled_wheel_by_path_and_sha256(built_bundle):
    """No name==version for pip to look up on an index (see test_mwaa_bundle_impostor.py for the install itself)."""
    output, printed = built_bundle
    lines = [line for line in (output / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines == [bundled_wheel_reference(output / "plugins.zip")]
    assert f"_wif-{__version__}-py3-none-any.whl#sha256=" in lines[0]
    assert "aws mwaa update-environment" in printed


def test_no_index_needs_the_dependency_wheels(provider_wheel, tmp_path):
    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "out"), "--wheel", str(provider_wheel),
                           "--no-index")
    assert code == 2 and "--dependency-wheels" in err and "--airflow-version" in err
    assert not (tmp_path / "out" / "requirements.txt").exists()


def test_no_index_with_dependency_wheels_bundles_them_all(provider_wheel, tmp_path):
    deps = tmp_path / "deps"
    deps.mkdir()
    fake = deps / "google_auth-2.40.3-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as dep:
        dep.writestr("google_auth-2.40.3.dist-info/METADATA", "Metadata-Version: 2.1\nName: google-auth\n"
                                                                "Version: 2.40.3\n")
    url = "https://raw.githubusercontent.com/apache/airflow/constraints-3.0.6/constraints-3.12.txt"
    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "out"), "--wheel", str(provider_wheel),
                           "--no-index", "--dependency-wheels", str(deps), "--constraints", url)
    assert code == 2 and "no network to fetch a constraints URL" in err and "FILE" in err
    assert not (tmp_path / "out").exists()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("google-auth==2.40.3\n")
    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "out"), "--wheel", str(provider_wheel),
                           "--no-index", "--dependency-wheels", str(deps), "--constraints", str(constraints))
    assert code == 0, err
    assert wheel_names(tmp_path / "out" / "plugins.zip") == sorted([provider_wheel.name, fake.name])
    lines = [line for line in (tmp_path / "out" / "requirements.txt").read_text().splitlines()
             if not line.startswith("#")]
    assert lines == [
        '--constraint "/usr/local/airflow/plugins/constraints.txt"',
        "--find-links /usr/local/airflow/plugins", "--no-index",
        bundled_wheel_reference(tmp_path / "out" / "plugins.zip")]


def test_dependency_wheels_without_no_index_are_where_pip_looks(provider_wheel, tmp_path):
    """A private dependency's wheel shipped in plugins.zip must be found there: without ``--find-links`` pip would
    install its public namesake from PyPI instead. Our own wheel stays a direct reference with its hash."""
    deps = tmp_path / "deps"
    deps.mkdir()
    private = deps / "acme_internal-1.0-py3-none-any.whl"
    with zipfile.ZipFile(private, "w") as dep:
        dep.writestr("acme_internal-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: acme-internal\n"
                                                             "Version: 1.0\n")
    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "out"), "--wheel", str(provider_wheel),
                           "--dependency-wheels", str(deps))
    assert code == 0, err
    assert wheel_names(tmp_path / "out" / "plugins.zip") == sorted([provider_wheel.name, private.name])
    lines = [line for line in (tmp_path / "out" / "requirements.txt").read_text().splitlines()
             if not line.startswith("#")]
    assert lines == ["--find-links /usr/local/airflow/plugins", bundled_wheel_reference(tmp_path / "out" / "plugins.zip")]


@pytest.mark.parametrize("url", [
    'https://example.com/constraints.txt" --index-url "https://evil.example/simple',
    "https://example.com/constraints.txt' --index-url 'https://evil.example/simple",
    "https://example.com/constraints.txt --extra-index-url https://evil.example/simple",
    "https://example.com/constraints.txt\n--index-url https://evil.example/simple",
    "https://example.com/constraints.txt\r--index-url https://evil.example/simple",
    "https://example.com/constr\taints.txt",
    "https://example.com/constr\x1baints.txt",
    "https://example.com/constr\u2028aints.txt",
], ids=["double-quote", "single-quote", "space", "newline", "carriage-return", "tab", "escape", "line-separator"])
def test_a_constraints_url_with_quotes_whitespace_or_control_characters_is_refused(provider_wheel, tmp_path, url):
    """The URL is written into requirements.txt inside quotes: a quote, a space or a line break would let it add
    options of its own (another index) to what pip reads on every container start."""
    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "out"), "--wheel", str(provider_wheel),
                           "--constraints", url)
    assert code == 2 and "--constraints" in err and "quote" in err
    assert not (tmp_path / "out").exists()


def test_a_plain_http_constraints_url_is_refused(provider_wheel, tmp_path):
    """pip would fetch it in clear text on every container start: whoever is on the path could loosen the pins."""
    url = "http://raw.githubusercontent.com/apache/airflow/constraints-3.0.6/constraints-3.12.txt"
    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "out"), "--wheel", str(provider_wheel),
                           "--constraints", url)
    assert code == 2 and "clear text" in err and "https://" in err
    assert not (tmp_path / "out").exists()


def test_a_constraints_url_without_no_index_is_kept(provider_wheel, tmp_path):
    url = "https://raw.githubusercontent.com/apache/airflow/constraints-3.0.6/constraints-3.12.txt"
    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "out"), "--wheel", str(provider_wheel),
                           "--constraints", url)
    assert code == 0, err
    assert f'--constraint "{url}"' in (tmp_path / "out" / "requirements.txt").read_text()


@pytest.mark.parametrize(("version", "message"), [
    ("3.0.x", "not a version"),
    ("9.9.9", "not an MWAA image this tool knows"),
])
def test_an_unknown_airflow_version_is_refused(provider_wheel, tmp_path, version, message):
    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "out"), "--wheel", str(provider_wheel),
                           "--no-index", "--airflow-version", version)
    assert code == 2 and message in err


def test_a_constraints_file_and_an_existing_plugins_zip_are_shipped_too(provider_wheel, tmp_path):
    existing = tmp_path / "existing.zip"
    with zipfile.ZipFile(existing, "w") as old:
        old.writestr("my_plugin.py", "x = 1\n")
    constraints = tmp_path / "mwaa-constraints.txt"
    constraints.write_text("google-auth==2.40.3\n")
    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "out"), "--wheel", str(provider_wheel),
                           "--merge", str(existing), "--constraints", str(constraints))
    assert code == 0, err
    with zipfile.ZipFile(tmp_path / "out" / "plugins.zip") as bundle:
        assert sorted(bundle.namelist()) == sorted(["my_plugin.py", "constraints.txt", provider_wheel.name,
                                                    PLUGIN_MODULE_NAME])
        assert bundle.read("constraints.txt") == b"google-auth==2.40.3\n"
    assert '--constraint "/usr/local/airflow/plugins/constraints.txt"' in (
        tmp_path / "out" / "requirements.txt").read_text()


def test_a_wheel_of_another_package_is_refused(tmp_path):
    other = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(other, "w") as wheel:
        wheel.writestr("other-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: other\nVersion: 1.0\n")
    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "out"), "--wheel", str(other))
    assert code == 2 and "is other 1.0, not airflow-provider-gcp-wif" in err
