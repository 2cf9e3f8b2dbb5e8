"""An STS or IAM Credentials answer is read only up to a cap (``MAX_ANSWER_BYTES``, 1 MiB; a real one is under a
kilobyte): an endpoint (or a proxy in front of it) that answers an endless or huge body does not have the task
process read it all into memory. The process stops reading at the cap and fails with a ``WifExchangeError``
naming the step, whether the body announces its length or not.

Set-up: a loopback endpoint that answers every request with HTTP 200 and up to 64 MiB of a JSON-looking body,
counting what it managed to send before the client hung up.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator

import pytest

from airflow_provider_gcp_wif import id_tokens
from airflow_provider_gcp_wif.credentials import MAX_ANSWER_BYTES, get_credentials
from airflow_provider_gcp_wif.errors import WifExchangeError
from airflow_provider_gcp_wif.id_tokens import get_id_token

ENDLESS = 64 * 1024 * 1024  # what the endpoint would send if the client kept reading
CHUNK = 64 * 1024
#: What the client may leave unread in its own socket buffers beyond the cap (loopback buffers are a few MiB).
SLACK = 8 * 1024 * 1024


@contextlib.contextmanager
def flooding_endpoint(declared: bool) -> Iterator[tuple[str, list[int]]]:
    """Yields the endpoint's base URL and a list that gets, per request, how many body bytes were sent."""
    sent: list[int] = []

    class Flood(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if declared:
                self.send_header("Content-Length", str(ENDLESS))
            self.end_headers()
            count = 0
            try:
                self.wfile.write(b'{"access_token": "')
                while count < ENDLESS:
                    self.wfile.write(b"a" * CHUNK)
                    count += CHUNK
            except OSError:  # the client hung up
                pass
            sent.append(count)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flood)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sent
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _access_token(settings, supplier) -> None:
    get_credentials(settings, supplier).force_refresh()


def _id_token(settings, supplier) -> None:
    id_tokens.clear_cache()
    get_id_token(get_credentials(settings, supplier), "https://hello-abc123-ew.a.run.app")


@pytest.mark.parametrize("declared", [False, True], ids=["endless", "declared-64MiB"])
@pytest.mark.parametrize(("step", "endpoint", "call"), [
    ("sts_exchange", "sts_endpoint", _access_token),
    ("impersonation", "iam_endpoint", _access_token),
    ("impersonation", "iam_endpoint", _id_token),
], ids=["sts", "generateAccessToken", "generateIdToken"])
def test_a_huge_answer_is_not_read_past_the_cap(settings_for, role_supplier, declared, step, endpoint, call):
    assert MAX_ANSWER_BYTES == 1024 * 1024
    with flooding_endpoint(declared) as (base, sent):
        url = f"{base}/v1/token" if endpoint == "sts_endpoint" else base
        settings = settings_for(**{endpoint: url})
        with pytest.raises(WifExchangeError) as caught:
            call(settings, role_supplier())
    assert caught.value.step == step
    assert "1 MiB" in caught.value.reason and "stopped reading" in caught.value.reason
    assert caught.value.retryable is False
    assert len(sent) == 1, "one request, not retried"
    assert sent[0] < MAX_ANSWER_BYTES + SLACK, f"the client read {sent[0]} bytes of an endless answer"
