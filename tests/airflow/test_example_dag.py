"""The example DAG end to end with ``airflow dags test`` in a subprocess: stock GCS operators, a GCSHook in a
PythonOperator, a deferrable sensor and an operator-level impersonation chain, all through ``gcp_wif_default``."""

from __future__ import annotations

from tests.airflow_process import AIRFLOW_3, airflow, airflow_environment, migrate


def test_example_dag_runs_with_stock_operators_through_one_exchange(emulator, tmp_path):
    info = emulator.info
    service_account, target = info["service_account"], info["target_service_account"]
    assert target, "the default fixture has a target service account"
    # The operator-level chain service_account -> target lists objects: target needs read access.
    emulator.control.set_project_iam([
        {"role": "roles/storage.admin", "members": [f"serviceAccount:{service_account}"]},
        {"role": "roles/storage.objectViewer", "members": [f"serviceAccount:{target}"]},
    ])
    environment = airflow_environment(
        emulator, tmp_path / "airflow-home",
        AIRFLOW_VAR_GCP_WIF_EXAMPLE_READER_CHAIN=f"{service_account},{target}",
    )
    migrate(environment)
    emulator.control.clear_log()

    result = airflow(["dags", "test", "example_gcs_wif"], environment)

    output = result.stdout + result.stderr
    if AIRFLOW_3:
        assert "state=success" in output or "DagRunState.SUCCESS" in output, output[-5000:]
    else:
        assert "Marking run <DagRun example_gcs_wif" in output and "successful" in output, output[-5000:]
    assert "Traceback" not in output, output[-10000:]

    log = emulator.control.requests()
    sts = [entry for entry in log if entry["endpoint"] == "sts"]
    # One exchange per (settings, AWS identity) in the process: every hook on the connection's own chain shares
    # one, and the operator-level chain (different settings: its own cache entry) takes a second.
    assert len(sts) == 2, sts
    assert all(entry["status"] == 200 for entry in sts), sts
    assert all(entry["aws_arn"] == "arn:aws:sts::123456789012:assumed-role/wif-role/airflow_aws_default"
               for entry in sts), sts

    generate = [entry for entry in log if entry["endpoint"] == "iam.generateAccessToken"]
    assert all(entry["status"] == 200 for entry in generate), generate
    assert [e for e in generate if f"/serviceAccounts/{service_account}:" in e["path"]], generate
    assert [e for e in generate if f"/serviceAccounts/{target}:" in e["path"]], "the operator chain's end"
    assert len(generate) == 2, generate  # one token per chain for the whole run

    storage = [entry for entry in log if entry["endpoint"] == "storage"]
    by_principal: dict[str, list[dict]] = {}
    for entry in storage:
        by_principal.setdefault(entry["principal"], []).append(entry)
    # Everything the stock operators and the GCSHook did, as the connection's service account ...
    writes = [entry for entry in storage if entry["method"] in ("POST", "PUT", "PATCH", "DELETE")]
    assert writes and all(entry["principal"] == service_account and entry["status"] < 300 for entry in writes)
    assert any(entry["path"] == "/storage/v1/b" and entry["method"] == "POST" for entry in writes)  # create
    # ... except list_with_operator_chain, which listed the copies as the end of the operator's chain.
    target_lists = [entry for entry in by_principal.get(target, []) if entry["path"].endswith("/o")]
    assert target_lists and all(entry["status"] == 200 for entry in target_lists), by_principal.get(target)
    assert set(by_principal) <= {service_account, target, "anonymous"}, set(by_principal)
