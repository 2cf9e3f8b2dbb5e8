"""Running the ``gcp-wif`` command line in this process and reading what it prints: the doctor's checklist, the
fingerprints of tokens it printed or the emulator issued, a ``gcp_wif`` connection's extras to start from."""

from __future__ import annotations

import hashlib
import io
import json
import re

from airflow_provider_gcp_wif import cli


def gcp_wif_extra(info: dict, **changes) -> dict:
    extra = dict(json.loads(info["env"]["AIRFLOW_CONN_GCP_WIF_DEFAULT"])["extra"])
    extra.update(changes)
    return {k: v for k, v in extra.items() if v is not None}


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def printed_token_fingerprints(text: str) -> set[str]:
    """Fingerprints (as the emulator logs them) of every word in ``text``."""
    return {hashlib.sha256(word.encode()).hexdigest()[:16] for word in re.split(r"[\s\"'`,;()]+", text) if word}


def issued_token_fingerprints(emulator) -> set[str]:
    found = set()
    for entry in emulator.control.requests():
        for key in ("issued_token_fingerprint", "token_fingerprint"):
            if entry.get(key):
                found.add(entry[key])
    return found


def statuses(output: str) -> dict[str, str]:
    """{check name: OK/WARN/FAIL/SKIP} from the doctor's checklist."""
    result = {}
    for line in output.splitlines():
        match = re.match(r"^\[(?: OK |WARN|FAIL|SKIP)\] (.+?)  ", line)
        if match:
            result[match.group(1).strip()] = line[1:5].strip()
    return result
