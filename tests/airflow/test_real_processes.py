"""Real Airflow components on SQLite running the example DAG and a triggerer proof, against the emulated clouds.

Airflow 3: ``api-server``, ``scheduler`` (LocalExecutor), ``dag-processor`` and ``triggerer``. Airflow 2.11:
``scheduler`` (SequentialExecutor: 2.x refuses any other executor on SQLite; it parses DAGs itself) and
``triggerer``. ``dag.test()`` runs triggers in the task's own process, so only these prove the triggerer path.

The same stack runs the ``federation: "jwt"`` example (``example_gcs_wif_jwt``, connection ``gcp_wif_jwt``: AWS
outbound identity federation into an OIDC provider of the pool) and a second proof trigger on that connection.

The triggerer gets its own AWS connection (``RoleSessionName`` ``triggerer-proof``), so its STS exchange is told
apart from the workers' in the emulator's request log; the test-only trigger (``dags/gcp_wif_proof_trigger.py``)
fetches a token through the stock ``GCSAsyncHook`` and uses it, and the log links that exchange to the storage call
(STS-issued token → generateAccessToken carrying it → storage call carrying the token that one issued).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import botocore.session
import pytest

from airflow_provider_gcp_wif.cli import _parser as cli_parser
from airflow_provider_gcp_wif.cli.setup_args import build_setup_plan
from tests.airflow_process import (
    AIRFLOW_3,
    EXAMPLE_DAGS,
    TEST_DAGS,
    Component,
    airflow,
    components_environment,
    dump_logs,
    free_port,
    migrate,
    query,
    start_components,
    wait_for,
    wait_for_api_server,
)

sys.path.insert(0, str(TEST_DAGS))
import loop_guard

# Airflow 2.x's SequentialExecutor runs both DAGs' tasks one after another, each a fresh `airflow tasks run` process:
# ~3 min on an idle 2-core machine, over 4 when it is shared. The limits only bound how long a failure takes.
pytestmark = [pytest.mark.real_processes, pytest.mark.smoke, pytest.mark.timeout(720)]

#: The jwt route needs a botocore that knows GetWebIdentityToken (1.41.0+: MWAA 2.11.2, 3.2.1, 3.3.1). Under an
#: older one (the other MWAA images' pins) the stack runs the sigv4 example and proof only; what the route says
#: there (a WifConfigError naming the version) is checked per image by tests/airflow/test_jwt_route.py.
JWT_ROUTE = "GetWebIdentityToken" in botocore.session.get_session().get_service_model("sts").operation_names
DAG_IDS = ("example_gcs_wif", "gcp_wif_triggerer_proof") + (("example_gcs_wif_jwt",) if JWT_ROUTE else ())
JWT_CONN_ID = "gcp_wif_jwt"
JWT_PROVIDER_ID = "aws-jwt"
TIMEOUT = 480
TRIGGERER_SESSION = "triggerer-proof"


def task_states(home: Path) -> list[tuple]:
    return query(home, "SELECT dag_id, task_id, state, try_number FROM task_instance ORDER BY dag_id, task_id")


def task_logs(home: Path, limit: int = 6000) -> str:
    """The logs of tasks that did not succeed (for failure messages)."""
    failed = {(d, t) for d, t, state, _ in task_states(home) if state not in ("success", "skipped")}
    parts = []
    for path in sorted((home / "logs").rglob("*.log")):
        if any(f"dag_id={d}" in str(path) and f"task_id={t}" in str(path) for d, t in failed):
            parts.append(f"--- {path.relative_to(home)}\n{path.read_text(errors='replace')[-limit:]}")
    return "\n".join(parts)


def test_triggerer_exchanges_on_its_own_and_the_example_dag_succeeds(emulator, tmp_path, components):
    info = emulator.info
    service_account, target = info["service_account"], info["target_service_account"]
    emulator.control.set_project_iam([
        {"role": "roles/storage.admin", "members": [f"serviceAccount:{service_account}"]},
        {"role": "roles/storage.objectViewer", "members": [f"serviceAccount:{target}"]},
    ])
    home = tmp_path / "airflow-home"
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLE_DAGS / "example_gcs_wif.py", dags)
    if JWT_ROUTE:
        shutil.copy(EXAMPLE_DAGS / "example_gcs_wif_jwt.py", dags)
    # The jwt route: an OIDC provider trusting the emulated AWS account's issuer with the mapping, condition and
    # binding `gcp-wif setup --federation jwt` prints for the role.
    role_arn = info["role_arn"]  # arn:aws:iam::<account>:role/wif-role, the JWT's sub for every session
    plan = build_setup_plan(cli_parser().parse_args([
        "setup", "--project-id", info["project_id"], "--project-number", info["project_number"], "--pool-id",
        info["pool_id"], "--provider-id", JWT_PROVIDER_ID, "--aws-role-name", role_arn, "--service-account",
        service_account, "--federation", "jwt"]))
    emulator.control.trust_aws_issuer(provider_id=JWT_PROVIDER_ID, attribute_mapping=plan.attribute_mapping,
                                      attribute_condition=plan.condition)
    emulator.control.add_binding(service_account, "roles/iam.workloadIdentityUser", plan.member)
    jwt_connection = json.loads(info["env"]["AIRFLOW_CONN_GCP_WIF_DEFAULT"])
    jwt_connection["extra"].update(provider_id=JWT_PROVIDER_ID, federation="jwt")
    shutil.copy(TEST_DAGS / "gcp_wif_triggerer_proof.py", dags)
    api_port = free_port()
    loop_report = tmp_path / "loop-guard.jsonl"
    environment = components_environment(
        emulator, home, dags, api_port,
        PYTHONPATH=str(TEST_DAGS),  # the proof trigger's module, for the triggerer and the workers
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="2",
        # Airflow 3 runs the marker and the sensor side by side: the sensor looks first and defers. 2.11's
        # SequentialExecutor runs one task at a time, so a delay would only cost time.
        GCP_WIF_EXAMPLE_MARKER_DELAY="20" if AIRFLOW_3 else "1",
        AIRFLOW_VAR_GCP_WIF_EXAMPLE_READER_CHAIN=f"{service_account},{target}",
        GCP_WIF_PROOF_BUCKET=info["bucket"],
        GCP_WIF_LOOP_GUARD_REPORT=str(loop_report),
        AIRFLOW_CONN_GCP_WIF_JWT=json.dumps(jwt_connection),
        **({"GCP_WIF_PROOF_JWT_CONN": JWT_CONN_ID} if JWT_ROUTE else {}),
    )
    aws_default = json.loads(environment["AIRFLOW_CONN_AWS_DEFAULT"])
    aws_default["extra"]["assume_role_kwargs"] = {"RoleSessionName": TRIGGERER_SESSION}
    triggerer_environment = {**environment, "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws_default)}
    migrate(environment)
    emulator.control.clear_log()

    start_components(components, api_port, environment, tmp_path)
    components.append(Component("triggerer", ["triggerer"], triggerer_environment, tmp_path))

    def serialized() -> bool:
        found = {row[0] for row in query(home, "SELECT dag_id FROM serialized_dag")}
        return found >= set(DAG_IDS)

    wait_for(serialized, 120, components, "the DAGs to be parsed and serialized")
    wait_for_api_server(api_port, components)
    for dag_id in DAG_IDS:
        airflow(["dags", "unpause", dag_id], environment)
        airflow(["dags", "trigger", dag_id], environment)

    def finished() -> list[tuple] | None:
        rows = query(home, "SELECT dag_id, state FROM dag_run")
        states = dict(rows)
        if set(states) >= set(DAG_IDS) and all(states[d] in ("success", "failed") for d in DAG_IDS):
            return rows
        return None

    rows = wait_for(finished, TIMEOUT, components, "the DAG runs to finish", interval=2)
    states = dict(rows)
    assert states == {dag_id: "success" for dag_id in DAG_IDS}, (
        f"{states}\n{task_states(home)}\n{task_logs(home)}\n{dump_logs(components)}"
    )
    log = emulator.control.requests()
    triggerer_log = next(c for c in components if c.name == "triggerer").log()

    # The triggerer exchanged its own AWS identity, once (sigv4: the jwt route's exchanges are checked below).
    jwt_sts = [entry for entry in log if entry["endpoint"] == "sts" and entry.get("oidc_sub")]
    sts = [entry for entry in log if entry["endpoint"] == "sts" and not entry.get("oidc_sub")]
    by_triggerer = [e for e in sts if e.get("aws_arn", "").endswith(f"assumed-role/wif-role/{TRIGGERER_SESSION}")]
    by_workers = [e for e in sts if e.get("aws_arn", "").endswith("assumed-role/wif-role/airflow_aws_default")]
    assert len(by_triggerer) == 1, sts
    assert by_workers, sts  # the tasks' own exchanges (one per task process and chain)
    assert len(by_triggerer) + len(by_workers) == len(sts), sts
    assert by_triggerer[0]["status"] == 200

    # ... then impersonated the service account with that federated token ...
    federated = by_triggerer[0]["token_fingerprint"]
    impersonations = [e for e in log if e["endpoint"] == "iam.generateAccessToken" and e["token_fingerprint"] == federated]
    assert len(impersonations) == 1, [e for e in log if e["endpoint"] == "iam.generateAccessToken"]
    assert impersonations[0]["status"] == 200
    assert f"/serviceAccounts/{service_account}:" in impersonations[0]["path"]

    # ... and the trigger used the resulting token against Cloud Storage, as the service account.
    issued = impersonations[0]["issued_token_fingerprint"]
    proof_calls = [e for e in log if e["endpoint"] == "storage" and e["token_fingerprint"] == issued]
    assert proof_calls, "no storage call carried the triggerer's token"
    assert [(e["method"], e["path"], e["status"], e["principal"]) for e in proof_calls] == [
        ("GET", f"/storage/v1/b/{info['bucket']}", 200, service_account)
    ]

    if AIRFLOW_3:
        # The stock deferrable sensor found no marker at first and deferred: its trigger polled the object
        # (gcloud-aio-storage sends no token under STORAGE_EMULATOR_HOST, hence "anonymous").
        polls = [e for e in log if e["endpoint"] == "storage" and e["principal"] == "anonymous"
                 and "markers" in e["path"] and "ready.txt" in e["path"]]
        assert polls, [e["path"] for e in log if e["endpoint"] == "storage" and e["principal"] == "anonymous"]

    # Nothing our code does blocks the triggerer's event loop: the proof trigger's module installed loop_guard in
    # the process that ran the triggers (the workers import it too, and run no loop), and no blocking call (socket
    # connect, name lookup, sleep, child process) was made with our code on the stack on a thread running a loop.
    # Judged by what runs where, not by how long it took (tests/core/test_loop_guard.py shows it catches an
    # exchange run on the loop).
    guarded, blocked = loop_guard.read_report(str(loop_report))
    assert guarded, "loop_guard was installed in no process"
    assert blocked == [], json.dumps(blocked, indent=1)
    assert "Traceback" not in triggerer_log, triggerer_log[-10000:]

    # The jwt route: every exchange presented AWS's JWT for the role to the OIDC provider and succeeded; the example's
    # tasks used the resulting service-account tokens against Cloud Storage, and so did the jwt proof trigger in the
    # triggerer (the bucket only the proof triggers read).
    if not JWT_ROUTE:
        assert jwt_sts == [], jwt_sts
        return
    assert jwt_sts and all(e["status"] == 200 and e["oidc_sub"] == role_arn for e in jwt_sts), jwt_sts
    jwt_federated = {e["token_fingerprint"] for e in jwt_sts}
    jwt_issued = {e["issued_token_fingerprint"] for e in log if e["endpoint"] == "iam.generateAccessToken"
                  and e["token_fingerprint"] in jwt_federated and e["status"] == 200}
    jwt_storage = [(e["method"], e["path"], e["status"], e["principal"]) for e in log
                   if e["endpoint"] == "storage" and e["token_fingerprint"] in jwt_issued]
    jwt_bucket = f"{info['project_id']}-wif-jwt-example"
    assert ("POST", "/storage/v1/b", 200, service_account) in jwt_storage, jwt_storage
    assert any(path.startswith(f"/storage/v1/b/{jwt_bucket}/o") and method == "GET" and status == 200
               for method, path, status, _ in jwt_storage), jwt_storage
    assert ("GET", f"/storage/v1/b/{info['bucket']}", 200, service_account) in jwt_storage, jwt_storage
