"""``make mwaa`` reports ``aws_keys_found``: the scan it relies on finds a key in a started process's environment
or in a file under AIRFLOW_HOME, and finds nothing in a keyless setup (container-credentials variables only)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "mwaa_stack.py"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz0000SECRET"


@pytest.fixture(scope="module")
def stack():
    spec = importlib.util.spec_from_file_location("mwaa_stack", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Started:
    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)

    def pids(self) -> list[int]:
        return [self.process.pid]


@pytest.fixture
def started():
    processes: list[Started] = []

    def start(name: str, **env: str) -> Started:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        processes.append(Started(name, {**clean, **env}))
        return processes[-1]

    yield start
    for item in processes:
        item.process.kill()
        item.process.wait()


def keyless_home(tmp_path: Path) -> Path:
    home = tmp_path / "airflow"
    (home / "logs").mkdir(parents=True)
    (home / "airflow.cfg").write_text("[core]\nexecutor = CeleryExecutor\n")
    (home / "logs" / "task.log").write_text("assumed-role/wif-role/worker -> airflow-wif@p.iam\n")
    return home


def test_a_keyless_stack_has_no_finding(stack, tmp_path, started):
    home = keyless_home(tmp_path)
    worker = started("worker", AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:1/v2/credentials/worker",
                     AIRFLOW_CONN_AWS_DEFAULT="aws://")
    assert stack.scan_for_aws_keys([worker], home, [SECRET]) == []


@pytest.mark.parametrize("variable", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"])
def test_a_key_variable_in_a_process_environment_is_found(stack, tmp_path, started, variable):
    worker = started("worker", **{variable: "x"})
    found = stack.scan_for_aws_keys([worker], keyless_home(tmp_path), [SECRET])
    assert found == [f"worker pid {worker.process.pid}: {variable}"]


def test_a_key_inside_a_connection_uri_in_the_environment_is_found(stack, tmp_path, started):
    worker = started("worker", AIRFLOW_CONN_AWS_DEFAULT="aws://AKIAABCDEFGHIJKLMNOP:" + SECRET + "@")
    assert stack.scan_for_aws_keys([worker], keyless_home(tmp_path), [SECRET])


@pytest.mark.parametrize("content", [f"secret = {SECRET}\n", "key AKIAABCDEFGHIJKLMNOP\n",
                                     "aws_secret_access_key = abc\n"])
def test_a_key_in_a_file_under_airflow_home_is_found(stack, tmp_path, content):
    home = keyless_home(tmp_path)
    (home / "logs" / "task.log").write_text(content)
    assert stack.scan_for_aws_keys([], home, [SECRET]) == ["logs/task.log"]
