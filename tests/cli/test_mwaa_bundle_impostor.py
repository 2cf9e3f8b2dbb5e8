"""Dependency confusion: `gcp-wif mwaa-bundle`'s requirements.txt installs the wheel shipped in plugins.zip, byte for
byte, whatever an index offers under the same name (issue #20 item 3).

The package is not on PyPI, so anyone can publish `airflow-provider-gcp-wif` there: the same version with a build
tag (`...-0.1.0-1-py3-none-any.whl`, which pip prefers to an untagged wheel of that version) or a higher version.
Here an index served on 127.0.0.1 offers both. The bundle's requirements.txt is installed as MWAA does it (plugins.zip
unpacked to a folder standing for /usr/local/airflow/plugins, the path rewritten as in test_mwaa_bundle_offline.py;
`pip install -r requirements.txt` with the image's constraints added when the file has none) and the oracle is the
installed files: each one is the bundled wheel's own bytes. A wheel swapped in the plugins folder under the bundled
wheel's name is refused by pip (the requirement carries the wheel's sha256). `--no-deps` keeps the install fast.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from airflow_provider_gcp_wif import __version__
from tests.fixtures import loopback_server

from .running import run_cli

REPO = Path(__file__).resolve().parents[2]
MWAA_PLUGINS = "/usr/local/airflow/plugins"
IMAGE_CONSTRAINTS = REPO / "constraints" / "mwaa" / "airflow-3.0.6.txt"
IMPOSTOR_MARK = "airflow_provider_gcp_wif/IMPOSTOR"


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def impostor_wheel(folder: Path, version: str, build_tag: str | None = None) -> Path:
    """A valid wheel of `airflow-provider-gcp-wif` whose package is not ours (it carries IMPOSTOR_MARK)."""
    dist_info = f"airflow_provider_gcp_wif-{version}.dist-info"
    files = {
        "airflow_provider_gcp_wif/__init__.py": b"__version__ = 'impostor'\n",
        IMPOSTOR_MARK: b"not the bundled wheel\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: airflow-provider-gcp-wif\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: impostor\nRoot-Is-Purelib: true\n"
                               f"{f'Build: {build_tag}' + chr(10) if build_tag else ''}Tag: py3-none-any\n").encode(),
    }
    record = "\n".join([*(record_line(n, d) for n, d in files.items()), f"{dist_info}/RECORD,,"]) + "\n"
    files[f"{dist_info}/RECORD"] = record.encode()
    name = f"airflow_provider_gcp_wif-{version}{f'-{build_tag}' if build_tag else ''}-py3-none-any.whl"
    with zipfile.ZipFile(folder / name, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
    return folder / name


@pytest.fixture(scope="module")
def impostor_index(tmp_path_factory):
    """A PEP 503 simple index on 127.0.0.1 offering an impostor of this version with a build tag, and a higher one."""
    root = tmp_path_factory.mktemp("index")
    files = root / "files"
    files.mkdir()
    wheels = [impostor_wheel(files, __version__, build_tag="1"), impostor_wheel(files, "99.0")]
    project = root / "simple" / "airflow-provider-gcp-wif"
    project.mkdir(parents=True)
    links = "".join(f'<a href="../../files/{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">'
                    f"{w.name}</a>\n" for w in wheels)
    (project / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    with loopback_server(functools.partial(Quiet, directory=str(root))) as base:
        yield f"{base}/simple/", wheels


@pytest.fixture(scope="module")
def provider_wheel(tmp_path_factory) -> Path:
    """The provider's wheel as `mwaa-bundle` builds it from the source tree."""
    output = tmp_path_factory.mktemp("built")
    code, _, err = run_cli("mwaa-bundle", "--output", str(output))
    assert code == 0, err
    with zipfile.ZipFile(output / "plugins.zip") as bundle:
        [name] = [n for n in bundle.namelist() if n.endswith(".whl")]
        (output / name).write_bytes(bundle.read(name))
    return output / name


def bundle_args(mode: str, tmp_path: Path) -> list[str]:
    if mode == "default":
        return []
    dependencies = tmp_path / "deps"
    dependencies.mkdir()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("google-auth==2.40.3\n")
    return ["--no-index", "--dependency-wheels", str(dependencies), "--constraints", str(constraints)]


def install_as_mwaa(tmp_path: Path, bundle: Path, index_url: str, tamper_with: Path | None = None):
    """Unpack plugins.zip into the stand-in plugins folder, rewrite requirements.txt's paths to it and install it with
    pip (MWAA's `-c <image constraints>` added when the file has none) into a fresh target folder."""
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(bundle / "plugins.zip") as archive:
        archive.extractall(plugins)
    [bundled] = [p for p in plugins.glob("*.whl") if p.name.startswith("airflow_provider_gcp_wif-")]
    if tamper_with is not None:
        bundled.write_bytes(tamper_with.read_bytes())
    text = (bundle / "requirements.txt").read_text().replace(MWAA_PLUGINS, str(plugins))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(text)
    target = tmp_path / "site-packages"
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-cache-dir", "--no-deps",
               "--no-compile", "--target", str(target), "--index-url", index_url, "-r", str(requirements)]
    if not any(line.startswith(("-c ", "--constraint ")) for line in text.splitlines()):
        command += ["-c", str(IMAGE_CONSTRAINTS)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "PYTHON"))}
    environment["PIP_CONFIG_FILE"] = os.devnull
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300, check=False)
    return result, target


def installed_differences(wheel: Path, target: Path) -> list[str]:
    """Every file of the installed package that is not the wheel's byte for byte (what pip writes itself is left
    out: the dist-info's RECORD, INSTALLER, REQUESTED, direct_url.json and the console scripts in bin/)."""
    bookkeeping = ("/RECORD", "/INSTALLER", "/REQUESTED", "/direct_url.json")
    with zipfile.ZipFile(wheel) as archive:
        expected = {n: archive.read(n) for n in archive.namelist()
                    if not n.endswith("/") and not n.endswith(bookkeeping)}
    installed = {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*")
                 if p.is_file() and not p.as_posix().endswith(bookkeeping) and p.relative_to(target).parts[0] != "bin"}
    return sorted(name for name in expected.keys() | installed.keys() if expected.get(name) != installed.get(name))


@pytest.mark.parametrize("mode", ["default", "no-index"])
def test_an_index_offering_the_same_name_does_not_replace_the_bundled_wheel(mode, provider_wheel, impostor_index,
                                                                             tmp_path):
    index_url, _ = impostor_index
    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "bundle"), "--wheel", str(provider_wheel),
                           *bundle_args(mode, tmp_path))
    assert code == 0, err
    result, target = install_as_mwaa(tmp_path, tmp_path / "bundle", index_url)
    assert result.returncode == 0, result.stderr[-3000:]
    assert installed_differences(provider_wheel, target) == []


@pytest.mark.parametrize("mode", ["default", "no-index"])
def test_a_wheel_swapped_in_the_plugins_folder_is_refused(mode, provider_wheel, impostor_index, tmp_path):
    index_url, impostors = impostor_index
    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "bundle"), "--wheel", str(provider_wheel),
                           *bundle_args(mode, tmp_path))
    assert code == 0, err
    result, target = install_as_mwaa(tmp_path, tmp_path / "bundle", index_url, tamper_with=impostors[0])
    assert result.returncode != 0 and not (target / IMPOSTOR_MARK).exists()
    assert "hash" in result.stderr.lower(), result.stderr[-3000:]
