"""docker-compose.yaml: parsed by a real compose implementation (no engine needed for `config`), and the pieces
its services run, run here as plain processes: the emulator command line and the Airflow service's start script."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures import wait_until

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
VENV_BIN = Path(sys.executable).parent


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def check_services(config: dict) -> None:
    services = config["services"]
    assert set(services) == {"clouds", "airflow"}
    clouds, airflow = services["clouds"], services["airflow"]
    # The emulator stays on loopback; Airflow shares its network namespace instead of reaching it over a network.
    assert "--host 127.0.0.1" in " ".join(clouds["command"])
    assert airflow["network_mode"] == "service:clouds"
    assert "ports" not in airflow
    ports = [p if isinstance(p, str) else f"{p['published']}:{p['target']}" for p in clouds["ports"]]
    assert ports == ["8080:8080"]
    assert airflow["depends_on"]["clouds"]["condition"] == "service_healthy"
    for service in (clouds, airflow):
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
        assert re.match(r"^(\$\{AIRFLOW_IMAGE:-)?apache/airflow:3\.", service["build"]["args"]["AIRFLOW_IMAGE"])
    assert airflow["command"] == ["bash", "/opt/gcp-wif/start-demo-airflow.sh"]
    env = airflow["environment"]
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False" and env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dags"
    mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in airflow["volumes"]]
    assert any(re.match(r"^(\./|.*/)example_dags:/opt/airflow/dags(:ro)?$", m) for m in mounts), mounts
    assert env["GCP_WIF_EMULATOR_INFO"] == "/run/gcp-wif/emulator.json"
    assert "/run/gcp-wif/emulator.json" in clouds["command"][-1]


@pytest.mark.skipif(compose_command() is None, reason="no docker compose implementation installed")
def test_docker_compose_config_accepts_the_file_and_resolves_the_services():
    result = subprocess.run([*compose_command(), "-f", str(COMPOSE), "config"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "AIRFLOW_IMAGE"})
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    check_services(config)
    assert config["services"]["airflow"]["build"]["args"]["AIRFLOW_IMAGE"] == "apache/airflow:3.3.2"


def test_the_compose_file_structure():
    config = yaml.safe_load(COMPOSE.read_text())
    check_services(config)
    assert "gcp-wif-run" in config["volumes"]
    # The real-clouds variant is there, commented out.
    assert "# --- Variant: real AWS and Google Cloud" in COMPOSE.read_text()


def test_the_dockerfile_copies_files_that_exist():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    sources = [part for line in dockerfile.splitlines() if line.startswith("COPY")
               for part in shlex.split(line)[1:-1] if not part.startswith("--")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
    assert 'apache-airflow==${AIRFLOW_VERSION}' in dockerfile and "[testing]" in dockerfile


def test_the_emulator_command_and_the_airflow_start_script_work_as_plain_processes(tmp_path):
    """Run the `clouds` command line (port 0 instead of 4443) writing the JSON file, then the `airflow` service's
    script with a stand-in `airflow`: it must take the connections from the file and pass `gcp-wif doctor`."""
    command = yaml.safe_load(COMPOSE.read_text())["services"]["clouds"]["command"][-1]
    argv = shlex.split(command.split(">")[0].removeprefix("exec "))
    assert argv[:3] == ["python", "-m", "airflow_provider_gcp_wif.testing"]
    argv[argv.index("--port") + 1] = "0"
    info_file = tmp_path / "emulator.json"
    clean_env = {k: v for k, v in os.environ.items()
                 if not k.startswith(("AWS_", "GCP_", "AIRFLOW_CONN_", "STORAGE_EMULATOR"))}
    with info_file.open("w") as out:
        emulator = subprocess.Popen([sys.executable, *argv[1:]], stdout=out, stderr=subprocess.PIPE, env=clean_env)
    try:
        wait_until(lambda: info_file.read_text().strip() or emulator.poll() is not None, 60, poll=0.2)
        if not info_file.read_text().strip():
            assert emulator.poll() is None, emulator.stderr.read().decode()
            pytest.fail("the emulator did not start")
        info = json.loads(info_file.read_text())
        assert info["sts_endpoint"].startswith("http://127.0.0.1:")

        stub = tmp_path / "bin"
        stub.mkdir()
        (stub / "airflow").write_text('#!/bin/sh\necho "airflow $* (AIRFLOW_CONN_GCP_WIF_DEFAULT set: '
                                      '${AIRFLOW_CONN_GCP_WIF_DEFAULT:+yes})"\n')
        (stub / "airflow").chmod(0o755)
        env = {**clean_env, "GCP_WIF_EMULATOR_INFO": str(info_file), "AWS_EC2_METADATA_DISABLED": "true",
               "PATH": f"{stub}:{VENV_BIN}:{os.environ['PATH']}"}
        result = subprocess.run(["bash", str(ROOT / "docker" / "start-demo-airflow.sh")], capture_output=True,
                                text=True, timeout=180, env=env)
        assert result.returncode == 0, result.stderr
        assert "Result: all checks passed" in result.stdout, result.stdout + result.stderr
        assert "airflow standalone (AIRFLOW_CONN_GCP_WIF_DEFAULT set: yes)" in result.stdout
        assert info["aws_secret_access_key"] not in result.stdout
    finally:
        emulator.send_signal(signal.SIGTERM)
        assert emulator.wait(timeout=30) == 0


def test_the_start_script_fails_when_the_emulator_never_writes_its_file(tmp_path):
    script = (ROOT / "docker" / "start-demo-airflow.sh").read_text().replace("seq 120", "seq 1")
    (tmp_path / "start.sh").write_text(script)
    result = subprocess.run(["bash", str(tmp_path / "start.sh")], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "GCP_WIF_EMULATOR_INFO": str(tmp_path / "missing.json")})
    assert result.returncode == 1 and "did not write" in result.stderr
