"""Private web server mode: `gcp-wif mwaa-bundle --no-index --airflow-version 3.0.6` installs with pip from the
bundle alone into a stand-in for the MWAA 3.0.6 image, and the provider then works there.

The image stand-in is a fresh Python 3.12 venv with what every MWAA image has (apache-airflow 3.0.6 and the Amazon
provider at the image's constraint pins, installed from uv's cache); the bundle is then installed the way MWAA does
it, `pip install -r requirements.txt` with the requirements' own `--no-index --find-links <plugins folder>` and no
pip configuration, so nothing can come from an index. The smoke imports the plugin, reads the provider info and
lists a bucket with a stock GCSHook through a `gcp_wif` connection against the emulator. Slow (a few minutes):
marked real_processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from airflow_provider_gcp_wif import __version__
from tests.airflow_process import airflow_environment

from .running import run_cli

pytestmark = [pytest.mark.real_processes, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
IMAGE = "3.0.6"
CONSTRAINTS = REPO / "constraints" / "mwaa" / f"airflow-{IMAGE}.txt"

SMOKE = """
import json, sys
from importlib import metadata
import airflow_provider_gcp_wif.plugin  # the plugin module MWAA's components import
from airflow.providers_manager import ProvidersManager
from airflow.providers.google.cloud.hooks.gcs import GCSHook
providers = ProvidersManager().providers
hook = GCSHook(gcp_conn_id="gcp_wif_default")
hook.upload(sys.argv[1], "offline/probe.txt", data=b"installed offline")
print(json.dumps({"provider": providers["airflow-provider-gcp-wif"].version,
                  "conn_type": "gcp_wif" in ProvidersManager().hooks,
                  "listed": hook.list(sys.argv[1], prefix="offline/"),
                  "google_provider": metadata.version("apache-airflow-providers-google")}))
"""


def python312() -> str | None:
    try:
        prefix = subprocess.run(["pyenv", "prefix", "3.12.1"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    candidate = Path(prefix.strip()) / "bin" / "python3.12"
    return str(candidate) if candidate.exists() else None


def test_the_no_index_bundle_installs_offline_into_the_image_and_works(tmp_path, emulator):
    python = python312()
    uv = shutil.which("uv") or str(Path(os.sys.executable).with_name("uv"))
    if python is None or not Path(uv).exists():
        pytest.skip("needs Python 3.12 (pyenv) and uv")
    # The image: apache-airflow + the Amazon provider at the image's pins, and no Google provider.
    image = tmp_path / "image"
    subprocess.run([uv, "venv", "-q", "--seed", "-p", python, str(image)], check=True, timeout=300)
    subprocess.run([uv, "pip", "install", "-q", "-p", str(image / "bin" / "python"), f"apache-airflow=={IMAGE}",
                    "apache-airflow-providers-amazon", "-c", str(CONSTRAINTS)], check=True, timeout=900)

    code, _, err = run_cli("mwaa-bundle", "--output", str(tmp_path / "bundle"), "--no-index",
                             "--airflow-version", IMAGE)
    assert code == 0, err
    plugins = tmp_path / "bundle" / "plugins.zip"
    print(f"plugins.zip: {plugins.stat().st_size / 1e6:.1f} MB")
    unpacked = tmp_path / "plugins"  # stands for /usr/local/airflow/plugins
    with zipfile.ZipFile(plugins) as bundle:
        bundle.extractall(unpacked)
    requirements = (tmp_path / "bundle" / "requirements.txt").read_text()
    assert "--no-index" in requirements and "https://" not in requirements
    (tmp_path / "requirements.txt").write_text(requirements.replace("/usr/local/airflow/plugins", str(unpacked)))

    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    environment["PIP_CONFIG_FILE"] = os.devnull
    result = subprocess.run([str(image / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                             "-q", "-r", str(tmp_path / "requirements.txt")], env=environment, capture_output=True,
                            text=True, timeout=1200, check=False)
    assert result.returncode == 0, result.stderr[-5000:]

    smoke_env = airflow_environment(emulator, tmp_path / "home")
    smoke_env["PATH"] = os.pathsep.join([str(image / "bin"), smoke_env["PATH"]])
    smoke = subprocess.run([str(image / "bin" / "python"), "-c", SMOKE, emulator.info["bucket"]], env=smoke_env,
                           capture_output=True, text=True, timeout=300, check=False)
    assert smoke.returncode == 0, smoke.stderr[-5000:]
    report = json.loads(smoke.stdout.strip().splitlines()[-1])
    assert report == {"provider": __version__, "conn_type": True, "listed": ["offline/probe.txt"],
                      "google_provider": "17.1.0"}
