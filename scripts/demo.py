"""`make demo`: the example DAG's stock Google operators authenticate through a `gcp_wif` connection against the
local emulated clouds (moto for AWS, this project's emulator for Google), with real Airflow; then a short summary.

Nothing here talks to the internet: every endpoint is on 127.0.0.1.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "example_gcs_wif"


def say(text: str = "") -> None:
    print(text, flush=True)


def airflow(env: dict[str, str], *args: str, log: Path) -> int:
    with log.open("a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n")
        out.flush()
        return subprocess.run([sys.executable, "-m", "airflow", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=900).returncode


def main() -> int:
    import airflow as airflow_package

    from airflow_provider_gcp_wif.testing import CloudEmulator

    workdir = Path(tempfile.mkdtemp(prefix="gcp-wif-demo-"))
    log = workdir / "airflow.log"
    say("airflow-provider-gcp-wif demo — stock Google operators, no service-account key")
    say(f"  Airflow {airflow_package.__version__}; work folder {workdir}")
    with CloudEmulator() as emulator:
        info = emulator.info
        control = emulator.control
        # The example's operator-level impersonation_chain goes one hop further, to a reader account.
        reader_chain = f"{info['service_account']},{info['target_service_account']}"
        config = control.get_config()
        control.configure({"project_iam": [*config["project_iam"], {
            "role": "roles/storage.objectViewer", "members": [f"serviceAccount:{info['target_service_account']}"]}]})
        say(f"  emulated AWS (moto, signatures verified) at {info['aws_endpoint']}")
        say(f"  emulated Google STS / IAM Credentials / Storage at {info['storage_host']}")

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AWS_", "GOOGLE_"))}
        env.update(info["env"])
        env.update({
            "AIRFLOW_HOME": str(workdir / "airflow-home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_VAR_GCP_WIF_EXAMPLE_READER_CHAIN": reader_chain,
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        say("  connections: gcp_wif_default (pool aws-pool, provider aws-provider, impersonates "
            f"{info['service_account']}) → aws_default (static keys, assumes {info['role_arn']})")
        say("")
        say("Preparing Airflow's metadata database ...")
        if airflow(env, "db", "migrate", log=log) != 0:
            say(f"airflow db migrate failed; see {log}")
            return 1
        say(f"Running: airflow dags test {DAG_ID}  (log: {log})")
        started = time.monotonic()
        code = airflow(env, "dags", "test", DAG_ID, log=log)
        elapsed = time.monotonic() - started

        requests = control.requests()
        sts = [r for r in requests if r["endpoint"] == "sts"]
        iam = [r for r in requests if r["endpoint"] == "iam.generateAccessToken"]
        storage = [r for r in requests if r["endpoint"] == "storage"]
        say("")
        if sts:
            say(f"AWS identity      {sts[0].get('aws_arn')}")
            say(f"Google principal  {sts[0].get('principal')}")
        for call in iam:
            account = call["path"].split("serviceAccounts/")[1].split(":")[0]
            say(f"Service account   {account}  (generateAccessToken: HTTP {call['status']})")
        say("")
        say("Tasks")
        for task_id, state in task_states(workdir / "airflow-home" / "airflow.db"):
            say(f"  {task_id:<28} {state}")
        principals = sorted({r["principal"] for r in storage})
        say("")
        say(f"Token exchanges   {len(sts)} STS exchange(s), {len(iam)} impersonation(s) for the whole run of "
            f"{len(task_states(workdir / 'airflow-home' / 'airflow.db'))} tasks ({elapsed:.0f} s): one per "
            "impersonation chain in use, shared by every hook")
        say(f"Storage calls     {len(storage)}, all with WIF tokens of: {', '.join(principals)}")
        say("")
        if code == 0:
            say("Demo succeeded: stock GCS operators ran on Workload Identity Federation, no key anywhere.")
        else:
            say(f"Demo FAILED (airflow dags test exited {code}); see {log}")
        return code


def task_states(database: Path) -> list[tuple[str, str]]:
    if not database.exists():
        return []
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? ORDER BY start_date", (DAG_ID,)
        ).fetchall()
    return [(task_id, state or "none") for task_id, state in rows]


if __name__ == "__main__":
    sys.exit(main())
