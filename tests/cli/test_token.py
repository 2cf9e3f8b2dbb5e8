"""`gcp-wif token` from an Airflow connection (`--conn-id`) or the seed's variables; Airflow only when asked."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .running import run_cli

GCP_WIF = str(Path(sys.executable).with_name("gcp-wif"))


def test_the_console_script_prints_a_token_for_an_airflow_connection_from_airflow_conn_variables(emulator, conn_env):
    assert shutil.which(GCP_WIF), "the gcp-wif console script is installed"
    result = subprocess.run([GCP_WIF, "token", "--conn-id", "gcp_wif_default", "--json"], capture_output=True,
                            text=True, timeout=120, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["expire_time"].endswith("Z")
    # The printed token is the one the emulator issued to the connection's service account.
    issued = emulator.control.requests("iam.generateAccessToken")
    assert [r["status"] for r in issued] == [200]
    assert issued[0]["issued_token_fingerprint"] == hashlib.sha256(printed["access_token"].encode()).hexdigest()[:16]
    # The AWS side came from the Airflow AWS connection (role_arn wif-role, session named by the Amazon provider).
    assert emulator.control.requests("sts")[0]["aws_arn"].startswith("arn:aws:sts::123456789012:assumed-role/wif-role/")


def test_token_from_the_seed_variables_does_not_import_airflow(emulator, seed_env):
    code = (
        "import sys, io; from airflow_provider_gcp_wif import cli; out = io.StringIO();"
        "rc = cli.main(['token'], out=out); print(rc, len(out.getvalue().split()), "
        "any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ))
    assert result.stdout.split() == ["0", "2", "False"], result.stderr


def test_an_unknown_connection_exits_2_and_says_how_to_define_it(emulator, conn_env):
    code, out, err = run_cli("token", "--conn-id", "no_such_connection")
    assert code == 2 and out == ""
    assert "no_such_connection" in err and "AIRFLOW_CONN_NO_SUCH_CONNECTION" in err


def test_a_connection_of_another_type_is_refused(emulator, conn_env):
    code, _, err = run_cli("token", "--conn-id", "aws_default")
    assert code == 2
    assert "has type 'aws', not 'gcp_wif'" in err


def test_an_exchange_failure_exits_1_with_the_step_and_fix(emulator, conn_env):
    emulator.control.remove_bindings(conn_env["service_account"])
    code, out, err = run_cli("token", "--conn-id", "gcp_wif_default")
    assert code == 1 and out == ""
    assert "(impersonation)" in err and "principalSet://" in err
