"""An allowed endpoint (or a proxy in front of it) that answers an error with the request it received echoed back —
the form body, the decoded form as JSON (httpbin-style) or the headers — must not put the subject token's AWS
session token and signature, or the federated Bearer token, into the error text or the formatted traceback (what
a task log and the CLI print)."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import traceback
import urllib.parse
from collections.abc import Iterator

import google.auth.transport.requests
import pytest

from airflow_provider_gcp_wif.credentials import get_credentials
from airflow_provider_gcp_wif.errors import WifExchangeError


def _echo_raw(body: bytes, headers: dict[str, str]) -> bytes:
    return body + b"\n" + "\n".join(f"{k}: {v}" for k, v in headers.items()).encode()


def _echo_json(body: bytes, headers: dict[str, str]) -> bytes:
    form = dict(urllib.parse.parse_qsl(body.decode()))
    return json.dumps({"form": form, "headers": headers}).encode()


def _echo_json_subject(body: bytes, headers: dict[str, str]) -> bytes:
    form = dict(urllib.parse.parse_qsl(body.decode()))
    subject = json.loads(urllib.parse.unquote(form["subject_token"])) if "subject_token" in form else {}
    return json.dumps({"error": "bad request", "received": subject, "headers": headers}).encode()


ECHOES = {"raw": _echo_raw, "json": _echo_json, "decoded subject token": _echo_json_subject}


@contextlib.contextmanager
def echoing_endpoint(status: int, echo) -> Iterator[str]:
    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = echo(body, dict(self.headers.items()))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("echo", ECHOES)
@pytest.mark.parametrize("status", [400, 403, 500])
def test_an_echoed_sts_request_leaves_no_aws_secret_in_the_error(emulator, settings_for, role_supplier, echo, status):
    supplier = role_supplier()
    aws = supplier.get_aws_security_credentials(None, None)
    with echoing_endpoint(status, ECHOES[echo]) as endpoint:
        credentials = get_credentials(settings_for(sts_endpoint=f"{endpoint}/v1/token"), supplier)
        with pytest.raises(WifExchangeError) as caught:
            credentials.refresh(google.auth.transport.requests.Request())
    printed = str(caught.value) + "".join(traceback.format_exception(caught.value))
    for secret in filter(None, [aws.secret_access_key, aws.session_token]):
        assert secret not in printed and urllib.parse.quote(secret, safe="") not in printed
    assert "Signature=" not in printed.replace("Signature=***", "")
    assert "Signature%3D" not in printed.replace("Signature%3D***", "")


@pytest.mark.parametrize("echo", ECHOES)
@pytest.mark.parametrize("status", [400, 403, 500])
def test_an_echoed_iam_request_leaves_no_federated_token_in_the_error(emulator, settings_for, role_supplier, echo,
                                                                      status):
    with echoing_endpoint(status, ECHOES[echo]) as endpoint:
        credentials = get_credentials(settings_for(iam_endpoint=endpoint), role_supplier())
        with pytest.raises(WifExchangeError) as caught:
            credentials.refresh(google.auth.transport.requests.Request())
    federated = credentials.chain.federated.token
    printed = str(caught.value) + "".join(traceback.format_exception(caught.value))
    assert "Bearer" not in printed.replace("Bearer ***", "")
    if federated:
        assert federated not in printed
