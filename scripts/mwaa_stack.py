"""`make mwaa`: the example DAG on an Amazon-MWAA-faithful local stack, keyless, against the emulated clouds.

    python scripts/mwaa_stack.py [--image 3.3.1] [--credential-ttl 60] [--keep DIR]     (MWAA_IMAGE=... too)

What MWAA does, and what this does the same way:

* The "image": ``.venv-mwaa-stack-<version>`` with ``apache-airflow[celery,amazon,google,postgres]==<version>``
  under the image's constraint file (``constraints/mwaa/`` or ``../shared/mwaa-constraints/``), plus ``pycurl``:
  kombu's SQS transport needs it for its asynchronous HTTP client, and MWAA's images ship their own SQS transport
  instead (``mwaa.celery.sqs_broker``), which is not ours to copy.
* The install: ``gcp-wif mwaa-bundle`` writes ``plugins.zip`` + ``requirements.txt``; ``plugins.zip`` is unpacked
  into the plugins folder and ``requirements.txt`` installed by ``pip`` with ``-c <the image's constraints>`` added
  (the file carries none), as MWAA's entrypoint does. MWAA's folder ``/usr/local/airflow`` is ``AIRFLOW_HOME``
  here; that path in ``requirements.txt`` (the wheel's ``file://`` direct reference, with its sha256) is rewritten
  accordingly. A failed pip install is logged, not fatal.
* The environment: ``AIRFLOW_CONN_AWS_DEFAULT=aws://``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
  ``AWS_EXECUTION_ENV=Amazon_MWAA_<version>``, a new interpreter per task, MWAA's secrets lookup pattern in the
  config; no AWS key in any process's environment, in ``airflow.cfg`` or in a file under ``AIRFLOW_HOME``
  (checked at the end: ``aws_keys_found``).
* The AWS identity: only the emulator's ECS container-credentials endpoint, one per "container" (worker,
  triggerer, scheduler, dag-processor, webserver), serving the execution role's temporary credentials with a short
  expiry (``--credential-ttl``), so botocore refreshes them during the run. The role session is the container's
  name: the emulator's log tells which container made each exchange.
* CeleryExecutor over SQS (kombu's SQS transport against the emulated AWS's SQS, with predefined queues as MWAA
  configures), PostgreSQL (Debian's) as the metadata database, each component a separate process.

* The ``federation: "jwt"`` route too, on images whose botocore has ``GetWebIdentityToken`` (>= 1.41: 2.11.2,
  3.2.1, 3.3.1): one more DAG (``example_gcs_wif_jwt``, connection ``gcp_wif_jwt``) and a second proof trigger in
  the same stack, the emulated AWS account's issuer trusted by an OIDC provider of the pool (``summary["jwt"]``).

The last line printed is one JSON object (see ``summary``); exit status 0 only when everything held.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MWAA_FOLDER = "/usr/local/airflow"
SECRETS_LOOKUP_PATTERN = "^(?!aws_default$).*$"
CONTAINERS = ("worker", "triggerer", "scheduler", "dag-processor", "webserver")
AWS_KEY_PATTERN = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


#: The first botocore with STS GetWebIdentityToken (AWS outbound identity federation).
JWT_BOTOCORE = "1.41.0"
JWT_PROVIDER_ID = "aws-jwt"
#: Container credentials' lifetime when the jwt route runs too: served with at least half of it left (100 s), which
#: leaves a JWT of >= 60 s (GetWebIdentityToken's minimum) plus the provider's 30-s margin; still rotated mid-run.
JWT_CREDENTIAL_TTL = 200.0


def supports_jwt(constraints: Path) -> bool:
    """Whether the image's botocore (its constraints' pin) has GetWebIdentityToken."""
    from packaging.version import Version

    pin = re.search(r"^botocore==(\S+)$", constraints.read_text(), re.MULTILINE)
    return bool(pin) and Version(pin.group(1)) >= Version(JWT_BOTOCORE)


def log(message: str) -> None:
    print(f"[mwaa-stack {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def constraints_file(version: str) -> Path:
    for folder in (ROOT / "constraints" / "mwaa", ROOT.parent.parent / "shared" / "mwaa-constraints",
                   Path("/work/shared/mwaa-constraints")):
        candidate = folder / f"airflow-{version}.txt"
        if candidate.is_file():
            return candidate
    raise SystemExit(f"no constraint file airflow-{version}.txt for image {version}")


def python_for(version: str) -> str:
    """MWAA's Python: 3.11 up to 2.10.3, 3.12 from 2.11.0 on."""
    wanted = "3.11" if tuple(int(p) for p in version.split(".")) < (2, 11, 0) else "3.12"
    if wanted == "3.11" and sys.version_info[:2] == (3, 11):
        return sys.executable
    sys.path.insert(0, str(ROOT / "scripts"))
    from matrix import python_interpreter  # the image's Python as the matrix finds it (MATRIX_PYTHON_3_x, PATH, pyenv)

    return str(python_interpreter(wanted))


def uv() -> str:
    candidate = Path(sys.executable).parent / "uv"
    return str(candidate) if candidate.exists() else (shutil.which("uv") or "uv")


def build_image(version: str, constraints: Path) -> Path:
    """The MWAA image's Airflow (without this provider): built once, reused while its stamp is newer."""
    venv = ROOT / f".venv-mwaa-stack-{version}"
    stamp = venv / ".image"
    if stamp.exists() and stamp.stat().st_mtime > constraints.stat().st_mtime:
        return venv
    log(f"building the image's Airflow in {venv.name} (once)")
    subprocess.run([uv(), "venv", "-q", "--seed", "--clear", "-p", python_for(version), str(venv)], check=True)
    subprocess.run([uv(), "pip", "install", "-q", "-p", str(venv / "bin" / "python"),
                    f"apache-airflow[celery,amazon,google,postgres]=={version}", "pycurl", "-c", str(constraints)],
                   check=True)
    stamp.touch()
    return venv


def mwaa_install(venv: Path, home: Path, constraints: Path) -> dict[str, Any]:
    """``gcp-wif mwaa-bundle``, then what MWAA does with its output."""
    bundle = home.parent / "bundle"
    subprocess.run([str(Path(sys.executable).parent / "gcp-wif"), "mwaa-bundle", "--output", str(bundle)],
                   check=True, capture_output=True, text=True)
    plugins = home / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(bundle / "plugins.zip") as archive:
        archive.extractall(plugins)
    requirements = (bundle / "requirements.txt").read_text().replace(MWAA_FOLDER, str(home))
    (home / "requirements.txt").write_text(requirements)
    command = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q",
               "-r", str(home / "requirements.txt")]
    if not re.search(r"^\s*(-c|--constraint)\b", requirements, re.M):
        command += ["-c", str(constraints)]  # MWAA adds its image's constraints when the file has none
    # The uninstall first makes each run install from plugins.zip (the image has no provider; a re-run would not).
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-q", "-y", "airflow-provider-gcp-wif"],
                   capture_output=True, check=False)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    (home / "requirements_install.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        log(f"pip install -r requirements.txt failed (MWAA logs this and starts anyway):\n{result.stderr[-3000:]}")
    return {"pip_exit": result.returncode, "plugins": sorted(p.name for p in plugins.iterdir())}


class Postgres:
    """A throwaway Debian PostgreSQL cluster on a loopback port, owned by the ``postgres`` user when run as root."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.bin = self._bindir()
        self.as_postgres = os.geteuid() == 0

    @staticmethod
    def _bindir() -> Path:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
        if not versions:
            raise SystemExit("PostgreSQL not found: apt-get install -y postgresql")
        return versions[-1].parent

    def _run(self, *args: str) -> None:
        command = list(args)
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def start(self) -> Postgres:
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            shutil.chown(self.directory.parent, "postgres", "postgres")
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "airflow", "--no-sync")
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.directory / "postgres.log"), "-w",
                  "-o", f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "airflow", "airflow")
        return self

    def url(self, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://airflow@127.0.0.1:{self.port}/airflow"

    def query(self, sql: str) -> list[list[str]]:
        result = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "airflow", "-d", "airflow",
                                 "-At", "-F", "\t", "-c", sql], capture_output=True, text=True, check=False)
        return [line.split("\t") for line in result.stdout.splitlines() if line]

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")


class Component:
    def __init__(self, name: str, args: list[str], env: dict[str, str], venv: Path, logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([str(venv / "bin" / "airflow"), *args], env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True, cwd=logs)

    def alive(self) -> bool:
        return self.process.poll() is None

    def pids(self) -> list[int]:
        """The component and every process of its session (task interpreters, Celery children, ...)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.getsid(int(entry.name)) == self.process.pid:
                        found.append(int(entry.name))
        return found

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and (self.alive() or self.pids()):
                time.sleep(0.2)
            if not self.alive() and not self.pids():
                break
        self._log.close()


def scan_for_aws_keys(components: list[Component], home: Path, secrets_to_find: list[str]) -> list[str]:
    """Where an AWS key (variable, access key id, or one of the known secrets) was found."""
    found = []
    for component in components:
        for pid in component.pids():
            with contextlib.suppress(OSError):
                environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
                for item in environ:
                    name, _, value = item.partition("=")
                    if name in KEY_VARIABLES or AWS_KEY_PATTERN.search(value) or any(
                            s and s in value for s in secrets_to_find):
                        found.append(f"{component.name} pid {pid}: {name}")
    for path in home.rglob("*"):
        if path.is_file() and path.suffix != ".whl" and path.stat().st_size < 5_000_000:
            text = path.read_text(errors="replace")
            if AWS_KEY_PATTERN.search(text) or any(s and s in text for s in secrets_to_find) or any(
                    re.search(rf"^\s*{v.lower()}\s*=", text, re.M | re.I) for v in KEY_VARIABLES[:3]):
                found.append(str(path.relative_to(home)))
    return found


CELERY_CONFIG = '''"""Celery settings as MWAA sets them: Airflow's defaults, kombu's SQS, predefined queues."""
import copy

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = copy.deepcopy(DEFAULT_CELERY_CONFIG)
CELERY_CONFIG["broker_transport_options"] = {{
    **CELERY_CONFIG.get("broker_transport_options", {{}}),
    "predefined_queues": {{"{queue}": {{"url": "{url}"}}, "default": {{"url": "{url}"}}}},
    "is_secure": False,
    "region": "{region}",
}}
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=os.environ.get("MWAA_IMAGE", "3.3.1"))
    parser.add_argument("--credential-ttl", type=float, default=None,
                        help="lifetime (s) of the execution role's container credentials (default 60; 200 on images "
                        "that also run the jwt route: a JWT of at least 60 s may not outlive the credentials asking "
                        "for it, and the endpoint serves credentials with half their life left)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds the DAG run may take")
    parser.add_argument("--keep", help="keep AIRFLOW_HOME and logs in this folder")
    parser.add_argument("--no-ui", action="store_true", help="skip the Test button check (Playwright)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    version = args.image
    airflow3 = int(version.split(".")[0]) >= 3
    constraints = constraints_file(version)
    jwt = supports_jwt(constraints)
    if args.credential_ttl is None:
        args.credential_ttl = JWT_CREDENTIAL_TTL if jwt else 60.0
    venv = build_image(version, constraints)

    from airflow_provider_gcp_wif.testing import CloudEmulator

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gcp-wif-mwaa-"))
    home, logs = work / "airflow", work / "logs"
    for folder in (home / "dags", home / "config", logs):
        folder.mkdir(parents=True, exist_ok=True)
    components: list[Component] = []
    emulator = CloudEmulator(aws_credential_ttl=args.credential_ttl)
    # Its own temp dir: the cluster runs as ``postgres``, which cannot enter a root-owned 0700 work folder.
    postgres = Postgres(Path(tempfile.mkdtemp(prefix="gcp-wif-mwaa-postgres-")) / "cluster")
    summary: dict[str, Any] = {"image": version, "credential_ttl": args.credential_ttl,
                               "executor": "CeleryExecutor", "broker": "sqs",
                               "metadata_db": "postgresql", "identity_source": "ecs-container-credentials",
                               "tasks_succeeded": 0, "tasks_failed": 0,
                               "exchanges_by_process": {"worker": 0, "triggerer": 0}, "aws_keys_found": None}
    ok = False
    try:
        emulator.start()
        info = emulator.info
        identities = emulator.identities
        assert identities is not None
        postgres.start()
        log(f"emulator, PostgreSQL :{postgres.port} up; installing as MWAA does")
        install = mwaa_install(venv, home, constraints)
        shutil.copy(ROOT / "example_dags" / "example_gcs_wif.py", home / "dags")
        if jwt:
            shutil.copy(ROOT / "example_dags" / "example_gcs_wif_jwt.py", home / "dags")
        # gcloud-aio-storage (the stock sensor's trigger) sends no token to an emulator: the test suite's proof DAG
        # has the triggerer fetch one through the stock GCSAsyncHook and use it (tests/airflow/dags).
        for name in ("gcp_wif_triggerer_proof.py", "gcp_wif_proof_trigger.py", "loop_guard.py"):
            shutil.copy(ROOT / "tests" / "airflow" / "dags" / name, home / "dags")

        import boto3

        queue = f"airflow-celery-{secrets.token_hex(4)}"
        sqs = boto3.client("sqs", endpoint_url=info["aws_endpoint"], region_name=info["aws_region"],
                           aws_access_key_id=info["aws_access_key_id"],
                           aws_secret_access_key=info["aws_secret_access_key"])
        queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
        (home / "config" / "mwaa_celery_config.py").write_text(
            CELERY_CONFIG.format(queue=queue, url=queue_url, region=info["aws_region"]))

        api_port = free_port()
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("AIRFLOW", "AWS_", "GOOGLE_", "CLOUDSDK_", "STORAGE_EMULATOR_HOST", "GCP_WIF_"))}
        base.pop("VIRTUAL_ENV", None)
        base.update({k: v for k, v in info["env"].items() if k != "AIRFLOW_CONN_AWS_DEFAULT"})
        base.update({
            "PATH": os.pathsep.join([str(venv / "bin"), base.get("PATH", "")]),
            "PYTHONPATH": os.pathsep.join([str(home / "config"), str(home / "dags")]),
            "GCP_WIF_PROOF_BUCKET": info["bucket"],
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONN_AWS_DEFAULT": "aws://",
            "AWS_REGION": info["aws_region"], "AWS_DEFAULT_REGION": info["aws_region"],
            "AWS_EXECUTION_ENV": f"Amazon_MWAA_{version}",
            "AWS_ENDPOINT_URL_SQS": info["aws_endpoint"],
            "AWS_EC2_METADATA_DISABLED": "true",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__EXECUTE_TASKS_NEW_PYTHON_INTERPRETER": "True",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url(),
            "AIRFLOW__CELERY__BROKER_URL": "sqs://",
            "AIRFLOW__CELERY__RESULT_BACKEND": postgres.url("db+postgresql"),
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "mwaa_celery_config.CELERY_CONFIG",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_lookup_pattern": SECRETS_LOOKUP_PATTERN}),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "GCP_WIF_EXAMPLE_MARKER_DELAY": "20",
            "AIRFLOW_VAR_GCP_WIF_EXAMPLE_READER_CHAIN": f"{info['service_account']},{info['target_service_account']}",
        })
        if not airflow3:
            base.pop("AIRFLOW__CORE__AUTH_MANAGER")
            # 2.x's webserver gives up when gunicorn's master is slow to answer (120 s): on 2 shared cores it can be.
            base.update({"AIRFLOW__WEBSERVER__WEB_SERVER_MASTER_TIMEOUT": "600",
                         "AIRFLOW__WEBSERVER__WEB_SERVER_WORKER_TIMEOUT": "600",
                         "AIRFLOW__WEBSERVER__WORKER_REFRESH_BATCH_SIZE": "0"})
        if jwt:
            # The execution role's JWTs (sub: its IAM ARN) trusted by an OIDC provider with the mapping, condition
            # and binding `gcp-wif setup --federation jwt` prints for the role.
            from airflow_provider_gcp_wif.cli import _parser as cli_parser
            from airflow_provider_gcp_wif.cli.setup_args import build_setup_plan

            plan = build_setup_plan(cli_parser().parse_args([
                "setup", "--project-id", info["project_id"], "--project-number", info["project_number"],
                "--pool-id", info["pool_id"], "--provider-id", JWT_PROVIDER_ID, "--aws-role-name", info["role_arn"],
                "--service-account", info["service_account"], "--federation", "jwt"]))
            emulator.control.trust_aws_issuer(provider_id=JWT_PROVIDER_ID, attribute_mapping=plan.attribute_mapping,
                                              attribute_condition=plan.condition)
            emulator.control.add_binding(info["service_account"], "roles/iam.workloadIdentityUser", plan.member)
            jwt_connection = json.loads(info["env"]["AIRFLOW_CONN_GCP_WIF_DEFAULT"])
            jwt_connection["extra"].update(provider_id=JWT_PROVIDER_ID, federation="jwt")
            base.update({"AIRFLOW_CONN_GCP_WIF_JWT": json.dumps(jwt_connection),
                         "GCP_WIF_PROOF_JWT_CONN": "gcp_wif_jwt"})
        for name in KEY_VARIABLES:
            base.pop(name, None)
        emulator.control.set_project_iam([
            {"role": "roles/storage.admin", "members": [f"serviceAccount:{info['service_account']}"]},
            {"role": "roles/storage.objectViewer", "members": [f"serviceAccount:{info['target_service_account']}"]},
        ])

        def env_of(container: str) -> dict[str, str]:
            return {**base, "AWS_CONTAINER_CREDENTIALS_FULL_URI": identities.container_env(container)[
                "AWS_CONTAINER_CREDENTIALS_FULL_URI"]}

        def cli(*command: str, container: str = "scheduler") -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(venv / "bin" / "airflow"), *command], env=env_of(container), cwd=logs,
                                  capture_output=True, text=True, timeout=300, check=True)

        log("airflow db migrate")
        cli("db", "migrate")
        emulator.control.clear_log()
        server = (["api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"] if airflow3
                  else ["webserver", "--hostname", "127.0.0.1", "--port", str(api_port), "--workers", "1"])
        plan = [("webserver", server, "webserver"), ("scheduler", ["scheduler"], "scheduler"),
                ("triggerer", ["triggerer"], "triggerer"),
                ("worker", ["celery", "worker", "--queues", "default", "--concurrency", "4"], "worker")]
        if airflow3:
            plan.insert(1, ("dag-processor", ["dag-processor"], "dag-processor"))
        for name, command, container in plan:
            components.append(Component(name, command, env_of(container), venv, logs))
        log("components started: " + ", ".join(c.name for c in components))

        def wait_for(check: Any, timeout: float, what: str) -> Any:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                dead = [c.name for c in components if not c.alive()]
                if dead:
                    raise RuntimeError(f"{dead} exited while waiting for {what}")
                value = check()
                if value:
                    return value
                time.sleep(2)
            raise RuntimeError(f"timed out waiting for {what}")

        dag_ids: tuple[str, ...] = ("example_gcs_wif", "gcp_wif_triggerer_proof")
        if jwt:
            dag_ids += ("example_gcs_wif_jwt",)
        wait_for(lambda: {row[0] for row in postgres.query("SELECT dag_id FROM serialized_dag")} >= set(dag_ids), 180,
                 "the DAGs to be serialized")
        for dag_id in dag_ids:
            cli("dags", "unpause", dag_id)
            cli("dags", "trigger", dag_id)
        log(f"{', '.join(dag_ids)} triggered")

        def finished() -> str | None:
            rows = dict(postgres.query("SELECT dag_id, state FROM dag_run"))
            if set(rows) >= set(dag_ids) and all(rows[d] in ("success", "failed") for d in dag_ids):
                return "success" if all(rows[d] == "success" for d in dag_ids) else f"failed: {rows}"
            return None

        run_state = wait_for(finished, args.timeout, "the DAG runs")
        states = postgres.query("SELECT dag_id || '.' || task_id, state FROM task_instance")
        log(f"DAG runs {run_state}: {dict((t, s) for t, s in states)}")
        summary["tasks_succeeded"] = sum(1 for _, s in states if s == "success")
        summary["tasks_failed"] = sum(1 for _, s in states if s not in ("success", "skipped"))

        ui = None
        if not args.no_ui:
            try:
                ui = test_button(f"http://127.0.0.1:{api_port}", airflow3, info, cli)
            except Exception as error:  # noqa: BLE001 - reported, and the run is not ok
                ui = {"status": None, "error": f"{type(error).__name__}: {str(error)[:500]}"}
            log(f"Test button: {ui}")
            summary["test_button"] = ui.get("status")

        role = f"arn:aws:sts::{info['aws_account_id']}:assumed-role/wif-role/"
        all_exchanges = [e for e in emulator.control.requests("sts") if e.get("status") == 200]
        exchanges = [e for e in all_exchanges if not e.get("oidc_sub")]
        if jwt:
            # A JWT names the role, not the session: the proof trigger's task (deferred to the triggerer) and the
            # example's tasks (workers) both succeeding on the jwt connection is what shows both processes used it.
            summary["jwt"] = {"exchanges": sum(1 for e in all_exchanges if e.get("oidc_sub") == info["role_arn"]),
                              "tasks": {t: s for t, s in states if t.startswith("example_gcs_wif_jwt.")
                                        or t == "gcp_wif_triggerer_proof.token_in_triggerer_jwt"}}
        else:
            summary["jwt"] = f"not on this image (botocore < {JWT_BOTOCORE})"
        by_session: dict[str, int] = {}
        for entry in exchanges:
            arn = entry.get("aws_arn") or ""
            session = arn[len(role):] if arn.startswith(role) else f"other:{arn}"
            by_session[session] = by_session.get(session, 0) + 1
        summary["exchanges_by_process"] = {"worker": by_session.pop("worker", 0),
                                           "triggerer": by_session.pop("triggerer", 0), **by_session}
        summary["credential_rotations"] = {n: v.rotations for n, v in identities.vendors.items() if v.rotations}
        summary["pip_install_exit"] = install["pip_exit"]
        keys = [info["aws_secret_access_key"], info["aws_access_key_id"]] + [
            v.current()["SecretAccessKey"] for v in identities.vendors.values() if v.rotations]
        found = scan_for_aws_keys(components, home, keys)
        summary["aws_keys_found"] = bool(found)
        if found:
            log(f"AWS keys found: {found}")
        ok = (run_state == "success" and summary["tasks_failed"] == 0 and not found
              and summary["exchanges_by_process"]["worker"] > 0 and summary["exchanges_by_process"]["triggerer"] > 0
              and (ui is None or ui.get("status") == 200)
              and (not jwt or (summary["jwt"]["exchanges"] > 0 and len(summary["jwt"]["tasks"]) == 5
                               and set(summary["jwt"]["tasks"].values()) == {"success"})))
    except Exception as error:  # noqa: BLE001 - reported in the summary line
        summary["error"] = f"{type(error).__name__}: {error}"[:2000]
        for component in components:
            tail = component.log_path.read_text(errors="replace")[-3000:] if component.log_path.exists() else ""
            print(f"--- {component.name} (last lines)\n{tail}", flush=True)
    finally:
        for component in reversed(components):
            component.stop()
        postgres.stop()
        emulator.stop()
        shutil.rmtree(postgres.directory.parent, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    summary["ok"] = ok
    summary["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary), flush=True)
    return 0 if ok else 1


def test_button(base: str, airflow3: bool, info: dict[str, Any], cli: Any) -> dict[str, Any]:
    """Store a gcp_wif connection in the metadata DB, open the UI's connection list in Chromium and press its Test
    button; returns the status and body of the API's answer."""
    extra = json.loads(info["env"]["AIRFLOW_CONN_GCP_WIF_DEFAULT"])["extra"]
    cli("connections", "add", "gcp_wif_mwaa", "--conn-type", "gcp_wif", "--conn-extra", json.dumps(extra),
        container="webserver")
    from playwright.sync_api import sync_playwright

    deadline = time.monotonic() + 180
    import urllib.request

    health = f"{base}/api/v2/monitor/health" if airflow3 else f"{base}/health"
    while True:
        try:
            with urllib.request.urlopen(health, timeout=5):  # noqa: S310 - a loopback http URL
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            if airflow3:
                page.goto(f"{base}/connections", wait_until="networkidle")
                row = page.locator("tr").filter(has_text="gcp_wif_mwaa").first
                with page.expect_response("**/api/v2/connections/test", timeout=120_000) as answer:
                    row.get_by_role("button", name="Test Connection").click()
            else:
                password = secrets.token_hex(12)
                cli("users", "create", "--username", "admin", f"--password={password}", "--role", "Admin", "--email",
                    "admin@example.com", "--firstname", "Ad", "--lastname", "Min", container="webserver")
                page.goto(f"{base}/login/", timeout=60_000)
                page.fill("#username", "admin")
                page.fill("#password", password)
                page.click("input[type=submit]")
                page.wait_for_url("**/home")
                page.goto(f"{base}/connection/list/", wait_until="load")
                row = page.locator("tr").filter(has_text="gcp_wif_mwaa").first
                row.locator("a[href*='/connection/edit/']").first.click()
                page.wait_for_load_state("load")
                page.locator("#extra__gcp_wif__pool_id").wait_for(state="visible")
                with page.expect_response("**/api/v1/connections/test", timeout=120_000) as answer:
                    page.get_by_role("button", name="Test").click()
            response = answer.value
            return {"status": response.status, "body": response.text()[:300]}
        finally:
            browser.close()


if __name__ == "__main__":
    sys.exit(main())
