"""The transport of every STS, IAM Credentials and generateIdToken request: it never follows a redirect and reads
at most :data:`MAX_ANSWER_BYTES` of an answer, uncompressed.

google-auth refreshes with whatever ``request`` its caller passes, and those transports follow redirects; the
exchange never uses them (see :func:`exchange_transport`). This module imports no Airflow.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow_provider_gcp_wif import forks, masking
from airflow_provider_gcp_wif.errors import AnswerEncoded, AnswerTooLarge, RedirectRefused

#: The most of an STS or IAM Credentials answer the exchange's transport reads (a real one is under a kilobyte).
MAX_ANSWER_BYTES = 1024 * 1024
_ANSWER_CHUNK_BYTES = 64 * 1024

_transport: Any = None
_transport_lock = threading.Lock()


def exchange_transport() -> Any:
    """The transport of every STS and IAM Credentials request: google-auth's requests transport over a session
    that never follows a redirect (a 3xx answer raises :class:`~airflow_provider_gcp_wif.errors.RedirectRefused`).

    google-auth refreshes with whatever ``request`` its caller passes (an ``AuthorizedSession``'s, the httplib2
    adapter of google-api-python-client, a hook's), and those follow redirects: an allowed endpoint answering
    ``307 Location: https://elsewhere/`` would have the subject token POSTed to ``elsewhere``. So the exchange never
    uses the caller's transport. Created once per process, on first use (a forked child makes its own).
    """
    global _transport
    transport = _transport
    if transport is None:
        with _transport_lock:
            transport = _transport
            if transport is None:
                transport = _transport = _no_redirect_transport()
                masking.redact_google_auth_logs()
    return transport


def _no_redirect_transport() -> Any:
    import http.cookiejar

    import google.auth.transport.requests
    import requests

    class NoRedirectSession(requests.Session):
        def get_redirect_target(self, resp: Any) -> str | None:
            return None  # never follow, whatever allow_redirects says

        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            # Streamed, then read here up to MAX_ANSWER_BYTES: an endless or huge answer is not read into memory
            # whole. Uncompressed only: a compressed chunk is decoded whole before it can be counted.
            kwargs["stream"] = True
            headers = {name: value for name, value in dict(kwargs.get("headers") or {}).items()
                       if str(name).lower() != "accept-encoding"}
            kwargs["headers"] = {**headers, "Accept-Encoding": "identity"}
            response = super().request(method, url, *args, **kwargs)
            _read_capped(response, str(url))
            return response

    class NoRedirectRequest(google.auth.transport.requests.Request):
        def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                     timeout: Any = None, **kwargs: Any) -> Any:
            kwargs["allow_redirects"] = False
            if timeout is not None:
                kwargs["timeout"] = timeout
            response = super().__call__(url, method=method, body=body, headers=headers, **kwargs)
            if 300 <= response.status < 400:
                raise RedirectRefused(response.status, response.headers.get("location"), url)
            return response

    session = NoRedirectSession()
    # Shared by every connection's exchange in the process: no state may pass from one answer to the next request.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return NoRedirectRequest(session)


def _read_capped(response: Any, url: str) -> None:
    """Read a streamed ``requests`` answer into ``response.content``, or raise :class:`AnswerTooLarge` (after
    closing the connection) once it passes :data:`MAX_ANSWER_BYTES`, declared or not, or :class:`AnswerEncoded`
    (unread) when it has a ``Content-Encoding`` other than identity (the exchange asks for identity; a compressed
    body would be decoded chunk by chunk before the cap counts it, and with urllib3 < 2.6 one chunk whole)."""
    try:
        encoding = str(response.headers.get("content-encoding") or "").strip()
        if encoding and encoding.lower() != "identity":
            raise AnswerEncoded(encoding, int(response.status_code), url)
        declared = str(response.headers.get("content-length") or "").strip()
        if declared.isdecimal() and declared.isascii() and int(declared) > MAX_ANSWER_BYTES:
            raise AnswerTooLarge(MAX_ANSWER_BYTES, int(response.status_code), url)
        chunks, size = [], 0
        for chunk in response.iter_content(_ANSWER_CHUNK_BYTES):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise AnswerTooLarge(MAX_ANSWER_BYTES, int(response.status_code), url)
            chunks.append(chunk)
    except BaseException:
        response.close()  # not consumed: the connection is dropped, not returned to the pool
        raise
    response._content = b"".join(chunks)  # what .content returns from now on (requests' own cache of the body)
    response.close()  # consumed: returns the connection to the pool (keep-alive)


def _forget_transport_in_child() -> None:
    # A forked child must not share the parent's connection pool, nor inherit a lock held by another thread.
    global _transport, _transport_lock
    _transport = None
    _transport_lock = threading.Lock()


forks.register(forks.EXCHANGE_TRANSPORT, _forget_transport_in_child)
