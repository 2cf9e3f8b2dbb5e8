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
from airflow_provider_gcp_wif.credentials import get_credentials
from airflow_provider_gcp_wif.errors import WifExchangeError
from airflow_provider_gcp_wif.id_tokens import get_id_token
from airflow_provider_gcp_wif.transport import MAX_ANSWER_BYTES
from tests.fixtures import loopback_server

ENDLESS = 64 * 1024 * 1024  # what the endpoint would send if the client kept reading
CHUNK = 64 * 1024
#: What the client may leave unread in its own socket buffers beyond the cap (loopback buffers are a few MiB).
SLACK = 8 * 1024 * 1024


@contextlib.contextmanager
def flooding_endpoint(declared: bool) -> Iterator[tuple[str, list[int], threading.Event]]:
    """Yields the endpoint's base URL, a list that gets, per request, how many body bytes were sent, and an event set
    when a request's handler is done (its thread outlives the server and the client: it stops when a write fails)."""
    sent: list[int] = []
    answered = threading.Event()

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
            answered.set()

        def log_message(self, *args: object) -> None:
            pass

    with loopback_server(Flood) as base:
        yield base, sent, answered


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
    with flooding_endpoint(declared) as (base, sent, answered):
        url = f"{base}/v1/token" if endpoint == "sts_endpoint" else base
        settings = settings_for(**{endpoint: url})
        with pytest.raises(WifExchangeError) as caught:
            call(settings, role_supplier())
    assert caught.value.step == step
    assert "1 MiB" in caught.value.reason and "stopped reading" in caught.value.reason
    assert caught.value.retryable is False
    # The client hung up; the endpoint's handler learns it at its next failed write (later, on a loaded machine).
    assert answered.wait(120), "the endpoint's handler never saw the client hang up"
    assert len(sent) == 1, "one request, not retried"
    assert sent[0] < MAX_ANSWER_BYTES + SLACK, f"the client read {sent[0]} bytes of an endless answer"


@contextlib.contextmanager
def answering_endpoint(headers: dict[str, str], body: bytes) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Yields the base URL of an endpoint answering every POST with HTTP 200, ``headers`` and ``body``, and a list
    that gets each request's headers."""
    requests_seen: list[dict[str, str]] = []

    class Answer(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            requests_seen.append({name.lower(): value for name, value in self.headers.items()})
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with loopback_server(Answer) as base:
        yield base, requests_seen


def _gzip_bomb() -> bytes:
    """A gzip body that decompresses to 64 MiB (64 KiB on the wire)."""
    import gzip
    import io

    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as compressed:
        for _ in range(ENDLESS // CHUNK):
            compressed.write(b"a" * CHUNK)
    return out.getvalue()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "gzip, identity"])
@pytest.mark.parametrize(("step", "endpoint", "call"), [
    ("sts_exchange", "sts_endpoint", _access_token),
    ("impersonation", "iam_endpoint", _id_token),
], ids=["sts", "generateIdToken"])
def test_an_encoded_answer_is_refused_before_it_is_read(settings_for, role_supplier, encoding, step, endpoint,
                                                         call, monkeypatch):
    """The exchange asks for ``Accept-Encoding: identity``; an answer that is compressed all the same (a gzip bomb:
    a small body that decodes to 64 MiB in one chunk, before any cap could count it) is refused unread."""
    decoded: list[int] = []
    import zlib

    real = zlib.decompressobj

    def counting(*args, **kwargs):  # what urllib3's gzip and deflate decoders would inflate
        decompressor = real(*args, **kwargs)
        decoded.append(0)
        return decompressor

    monkeypatch.setattr(zlib, "decompressobj", counting)
    with answering_endpoint({"Content-Type": "application/json", "Content-Encoding": encoding},
                            _gzip_bomb()) as (base, seen):
        url = f"{base}/v1/token" if endpoint == "sts_endpoint" else base
        with pytest.raises(WifExchangeError) as caught:
            call(settings_for(**{endpoint: url}), role_supplier())
    assert caught.value.step == step
    assert "Content-Encoding" in caught.value.reason and encoding.split(",")[0] in caught.value.reason
    assert caught.value.retryable is False
    assert len(seen) == 1, "one request, not retried"
    assert seen[0].get("accept-encoding") == "identity"
    assert decoded == [], "the answer was decompressed"


@pytest.mark.parametrize("declared", ["\u00b2", "\u00b9\u00b2", "1e3", "-1", "0x10"])
def test_a_content_length_that_is_not_ascii_digits_is_ignored(declared):
    """``'²'.isdigit()`` is true and ``int('²')`` a ValueError: a Content-Length that is not ASCII digits is
    ignored (the body is counted as it is read), never a crash of the exchange's transport."""
    import requests

    from airflow_provider_gcp_wif.transport import _read_capped

    body = b'{"access_token": "a"}'
    with answering_endpoint({"Content-Type": "application/json", "Content-Length": declared}, body) as (base, _):
        answer = requests.post(base, data=b"{}", stream=True, timeout=60)
        assert answer.headers["content-length"] == declared
        _read_capped(answer, base)
    assert answer.content == body
