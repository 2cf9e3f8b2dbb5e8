"""The leak scan of the secrecy tests: every log record of a text that shows a secret's shape (a Google token, an
AWS session token or signature, an Authorization header, ...) or one of the literal secrets given, minus the two
upstream exposures docs/reliability.md documents (``airflow dags test``'s MaskSecret debug line, botocore's own wire
logging)."""

from __future__ import annotations

import re

SECRET_SHAPES = {
    "emulator-minted Google token": re.compile(r"ya29\.emu-(?:fed|sa)-[A-Za-z0-9_-]{8,}"),
    "AWS session token (moto)": re.compile(r"FQoGZXIvYXdz[A-Za-z0-9+/=]{16,}"),
    "Authorization header value": re.compile(r"(?i)authorization['\"]?\s*[:=]\s*b?['\"]?\s*(?:bearer|aws4-hmac)"),
    "SigV4 signature": re.compile(r"Signature=[0-9a-f]{64}"),
    "security token header value": re.compile(r"(?i)x-amz-security-token['\"]?\s*[:=]\s*\S{8,}"),
    "signed target-resource header (subject token)": re.compile(r"(?i)x-goog-cloud-target-resource"),
    "access key id next to a secret": re.compile(r"A(?:K|S)IA[A-Z0-9]{16}\W{1,6}[A-Za-z0-9/+]{40}"),
}


_RECORD_START = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def records(text: str) -> list[str]:
    """Log records: a timestamped line and the lines that continue it (a multi-line message)."""
    grouped: list[str] = []
    for line in text.splitlines():
        if grouped and not _RECORD_START.match(line):
            grouped[-1] += "\n" + line
        else:
            grouped.append(line)
    return grouped


def upstream_exposure(record: str) -> bool:
    dags_test_mask_message = "msg=MaskSecret(" in record and "Sending request" in record
    return dags_test_mask_message or "[botocore." in record


def leaks(text: str, literal_secrets: dict[str, str]) -> list[str]:
    found = []
    for record in records(text):
        if upstream_exposure(record):
            continue
        for name, shape in SECRET_SHAPES.items():
            if shape.search(record):
                found.append(f"{name}: {record[:300]}")
        for name, secret in literal_secrets.items():
            if secret in record:
                found.append(f"{name}: {record[:100]}")
    return found
