"""The ID-token example end to end with ``airflow dags test``: the task calls a local stand-in for a private Cloud
Run service, which admits the request only if the ID token verifies against the emulator's Google certificates,
names its URL as audience and the connection's service account as email."""

from __future__ import annotations

import http.server
import json
import runpy
import threading
from typing import ClassVar

import google.auth.transport.requests
from google.oauth2 import id_token as google_id_token

from tests.airflow_process import AIRFLOW_3, EXAMPLE_DAGS, airflow, airflow_environment, migrate


def test_example_dags_parse():
    for path in sorted(EXAMPLE_DAGS.glob("*.py")):
        namespace = runpy.run_path(str(path))
        dags = [value for value in namespace.values() if type(value).__name__ == "DAG"]
        assert dags, f"{path.name} defines no DAG"


class PrivateService(http.server.BaseHTTPRequestHandler):
    """Admits a request the way Cloud Run does: a valid Google-signed ID token for this URL, from the invoker."""

    certs_url = ""
    audience = ""
    invoker = ""
    seen: ClassVar[list[dict]] = []

    def do_GET(self):
        header = self.headers.get("Authorization", "")
        try:
            claims = google_id_token.verify_token(header.removeprefix("Bearer "),
                                                  google.auth.transport.requests.Request(),
                                                  audience=self.audience, certs_url=self.certs_url)
            allowed = claims.get("email") == self.invoker and claims.get("email_verified") is True
        except ValueError as err:
            claims, allowed = {"error": str(err)}, False
        self.seen.append(claims)
        body = json.dumps({"hello": claims.get("email")} if allowed else {"error": "forbidden"}).encode()
        self.send_response(200 if allowed else 403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_example_calls_a_private_service_with_an_id_token(emulator, tmp_path):
    info = emulator.info
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PrivateService)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    PrivateService.certs_url, PrivateService.audience = info["id_token_certs_url"], base
    PrivateService.invoker, PrivateService.seen = info["service_account"], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        environment = airflow_environment(emulator, tmp_path / "airflow-home",
                                          AIRFLOW_VAR_GCP_WIF_EXAMPLE_CLOUD_RUN_URL=f"{base}/hello?name=airflow")
        migrate(environment)
        emulator.control.clear_log()
        result = airflow(["dags", "test", "example_id_token_wif"], environment)
    finally:
        server.shutdown()
        server.server_close()

    output = result.stdout + result.stderr
    if AIRFLOW_3:
        assert "state=success" in output or "DagRunState.SUCCESS" in output, output[-5000:]
    else:
        assert "successful" in output, output[-5000:]
    assert "answered HTTP 200" in output, output[-5000:]
    (claims,) = PrivateService.seen
    assert claims["aud"] == base and claims["email"] == info["service_account"]
    # The task's own calls: one exchange, one ID token (the service fetched the certificates itself).
    calls = [r["endpoint"] for r in emulator.control.requests() if r["endpoint"] != "certs"]
    assert calls == ["sts", "iam.generateIdToken"]
