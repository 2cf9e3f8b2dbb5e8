"""Which of the emulator's tokens a text holds, judged by the emulator, not by the code under test.

The emulator's request log keeps a SHA-256 fingerprint (never the value) of every token it issued or received: the
federated token STS issued (``token_fingerprint`` of ``sts``), the subject token STS received
(``subject_token_fingerprint``), the Bearer token each IAM Credentials or Storage call carried
(``token_fingerprint``) and the service-account token IAM issued (``issued_token_fingerprint``). A text leaks one of
them when a run of token characters in it has that fingerprint.
"""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_gcp_wif.testing.state import fingerprint

FINGERPRINT_FIELDS = {
    "token_fingerprint": "token",
    "issued_token_fingerprint": "issued token",
    "subject_token_fingerprint": "subject token",
}
# Token characters: emulator tokens (ya29.emu-...-<urlsafe>) and URL-encoded subject tokens (%7B%22...).
_RUN = re.compile(r"[A-Za-z0-9._~+/=%-]{16,}")


def known_tokens(emulator: Any) -> dict[str, str]:
    """``{fingerprint: what it is}`` for every token in the emulator's request log."""
    known: dict[str, str] = {}
    for entry in emulator.control.requests():
        for field, name in FINGERPRINT_FIELDS.items():
            if entry.get(field):
                known.setdefault(entry[field], f"{name} of {entry['endpoint']}")  # first seen names it
    return known


def tokens_in(text: str, known: dict[str, str]) -> list[str]:
    """The names of the known tokens that ``text`` holds verbatim."""
    found = []
    for run in set(_RUN.findall(text)):
        for candidate in {run, run.rstrip(".=-/"), run.lstrip("/")}:
            if fingerprint(candidate) in known:
                found.append(f"{known[fingerprint(candidate)]}: {candidate[:12]}...")
    return found
