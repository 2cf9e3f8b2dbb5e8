"""The emulator's whole HTTP surface, on the wire, against golden answers.

A fixed corpus of raw requests (every route, wrong methods, unknown and odd paths, malformed bodies, injected
faults, the control plane) is sent over a plain socket; each answer's status line, header list (in order) and
body bytes are compared with ``http_surface.golden.json``, recorded from the emulator before its routing moved
to werkzeug's ``Map``. Only what changes from run to run is masked (ports, tokens, keys, times, ids), and each
answer's ``Content-Length`` is checked against the real body length before masking. The request log the corpus
leaves (``/_emulator/requests``) is part of the golden record.

Regenerate (only when a change of the surface is intended): ``python tests/emulator/test_emulator_http_surface.py``.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.parse
from pathlib import Path
from typing import Any

from wif_chain import federated_token, service_account_token

GOLDEN = Path(__file__).with_name("http_surface.golden.json")

CONTROL_JSON = {"Content-Type": "application/json"}


def _corpus(info: dict[str, Any]) -> list[tuple[str, str, dict[str, str], bytes]]:
    """(method, request target, headers, body); ``{fed}`` / ``{sa}`` in a header stand for live tokens."""
    sa_email = info["service_account"]
    bucket = info["bucket"]
    iam = f"/v1/projects/-/serviceAccounts/{sa_email}"
    fed_auth = {"Authorization": "Bearer {fed}"}
    sa_auth = {"Authorization": "Bearer {sa}"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    as_json = {"Content-Type": "application/json"}
    scope = json.dumps({"scope": ["https://www.googleapis.com/auth/cloud-platform"]}).encode()
    fault = lambda spec: ("POST", "/_emulator/faults", CONTROL_JSON, json.dumps(spec).encode())  # noqa: E731
    return [
        # unknown and odd paths
        ("GET", "/", {}, b""),
        ("GET", "/nope", {}, b""),
        ("POST", "/v1/token/", form, b""),
        ("POST", "//v1/token", form, b"grant_type=x"),
        ("GET", "/v1", {}, b""),
        ("GET", "/_emulator", {}, b""),
        ("GET", "/oauth2/v2/certs", {}, b""),
        ("GET", "/storage/v2/b", {}, b""),
        ("GET", "/storagex/v1/b", {}, b""),
        ("GET", "/upload/storage/v1", {}, b""),
        ("GET", "/download/storage/v1/", {}, b""),
        ("GET", "/storage/v1/b%0A", {}, b""),
        ("GET", "/v1/projects/p%0A", {}, b""),
        ("OPTIONS", "/v1/token", {}, b""),
        # STS
        ("GET", "/v1/token", {}, b""),
        ("HEAD", "/v1/token", {}, b""),
        ("PUT", "/v1/token", form, b""),
        ("POST", "/v1/token", form, b""),
        ("POST", "/v1/token", as_json, b'{"grant_type":'),
        ("POST", "/v1/token", as_json, b"[1, 2]"),
        ("POST", "/v1/token", {"Content-Type": "text/plain"}, b"\xff\xfe"),
        ("POST", "/v1/token", form, b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"),
        ("POST", "/v1/token?x=1", form, b"grant_type=nope&subject_token=x"),
        # OAuth 2.0 JWT-bearer
        ("GET", "/token", {}, b""),
        ("POST", "/token", form, b""),
        ("POST", "/token", form, b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=x.y.z"),
        ("POST", "/token/", form, b""),
        # IAM Credentials
        ("POST", f"{iam}:generateAccessToken", as_json, scope),
        ("GET", f"{iam}:generateAccessToken", fed_auth, b""),
        ("DELETE", f"{iam}:generateIdToken", fed_auth, b""),
        ("POST", f"{iam}:generateAccessToken", {**as_json, "Authorization": "Bearer nope"}, scope),
        ("POST", f"{iam}:generateAccessToken", {**as_json, **fed_auth}, b"{not json"),
        ("POST", f"{iam}:generateAccessToken", {**as_json, **fed_auth}, b"{}"),
        ("POST", f"{iam}:generateAccessToken", {**as_json, **fed_auth}, scope),
        ("POST", f"{iam}:generateAccessToken", {**as_json, **fed_auth},
         json.dumps({"scope": ["x"], "lifetime": "7200s"}).encode()),
        ("POST", f"{iam}:generateIdToken", {**as_json, **fed_auth}, json.dumps({"audience": "aud"}).encode()),
        ("POST", f"{iam}:generateIdToken", {**as_json, **fed_auth}, b"{}"),
        ("POST", iam.replace("@", "%40") + ":generateAccessToken", {**as_json, **fed_auth}, scope),
        ("POST", iam.replace("@", "%2540") + ":generateAccessToken", {**as_json, **fed_auth}, scope),
        ("POST", f"{iam}:generateSomething", {**as_json, **fed_auth}, scope),
        ("POST", f"{iam}:x:generateAccessToken", {**as_json, **fed_auth}, scope),
        ("POST", f"{iam}:generateAccessToken/", {**as_json, **fed_auth}, scope),
        ("POST", "/v1/projects/-/serviceAccounts/:generateAccessToken", {**as_json, **fed_auth}, scope),
        ("POST", f"/v1/projects/p/q/serviceAccounts/{sa_email}:generateAccessToken", {**as_json, **fed_auth}, scope),
        ("POST", "/v1/projects/my-project/serviceAccounts/nobody@x.iam.gserviceaccount.com:generateAccessToken",
         {**as_json, **sa_auth}, scope),
        # Resource Manager
        ("GET", f"/v1/projects/{info['project_id']}", {}, b""),
        ("GET", f"/v1/projects/{info['project_id']}", sa_auth, b""),
        ("GET", f"/v1/projects/{info['project_number']}", fed_auth, b""),
        ("GET", "/v1/projects/other-project", sa_auth, b""),
        ("POST", f"/v1/projects/{info['project_id']}", sa_auth, b""),
        ("HEAD", f"/v1/projects/{info['project_id']}", sa_auth, b""),
        ("GET", f"/v1/projects/{info['project_id']}:undelete", sa_auth, b""),
        ("GET", f"/v1/projects/{info['project_id']}/", sa_auth, b""),
        ("GET", "/v1/projects/", sa_auth, b""),
        # Secret Manager
        ("GET", "/v1/projects/p/secrets/s/versions/latest:access", {}, b""),
        ("GET", f"/v1/projects/{info['project_id']}/secrets/nope/versions/latest:access", sa_auth, b""),
        ("POST", "/v1/projects/p/secrets/s/versions/1:access", sa_auth, b""),
        ("GET", "/v1/projects/p/secrets/s/versions/1:destroy", sa_auth, b""),
        ("GET", "/v1/projects/p/secrets/s/versions/a:b:access", sa_auth, b""),
        # ID-token certificates
        ("GET", "/oauth2/v1/certs", {}, b""),
        ("GET", "/oauth2/v3/certs", {}, b""),
        ("POST", "/oauth2/v3/certs", {}, b"x"),
        ("GET", "/oauth2/v1/certs?x=1", {}, b""),
        # Cloud Storage
        ("GET", "/storage/v1", {}, b""),
        ("GET", "/storage/v1/", {}, b""),
        ("GET", "/storage/v1//b", {}, b""),
        ("GET", f"/storage/v1/b?project={info['project_id']}", sa_auth, b""),
        ("GET", f"/storage/v1/b/{bucket}", {"Authorization": "Bearer nope"}, b""),
        ("GET", f"/storage/v1/b/{bucket}", fed_auth, b""),
        ("GET", f"/storage/v1/b/{bucket}", sa_auth, b""),
        ("POST", f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name=dir%2Fa.txt",
         {**sa_auth, "Content-Type": "text/plain"}, b"hello"),
        ("POST", f"/upload/storage/v1/b/{bucket}/o?uploadType=media", {**sa_auth, "Content-Type": "text/plain"},
         b"hello"),
        ("GET", f"/storage/v1/b/{bucket}/o?prefix=dir%2F&delimiter=%2F", sa_auth, b""),
        ("GET", f"/storage/v1/b/{bucket}/o/dir%2Fa.txt", sa_auth, b""),
        ("GET", f"/storage/v1/b/{bucket}/o/dir%2Fa.txt?alt=media", sa_auth, b""),
        ("GET", f"/download/storage/v1/b/{bucket}/o/dir%2Fa.txt?alt=media", sa_auth, b""),
        ("HEAD", f"/download/storage/v1/b/{bucket}/o/dir%2Fa.txt?alt=media", sa_auth, b""),
        ("GET", f"http://{info['storage_host'].split('://')[1]}/storage/v1/b/{bucket}/o/dir%2Fa.txt?alt=media",
         sa_auth, b""),
        ("GET", f"/storage/v1/b/{bucket}/o/dir/a.txt", sa_auth, b""),
        ("GET", f"/storage/v1/b/{bucket}/o/missing", sa_auth, b""),
        ("PATCH", f"/storage/v1/b/{bucket}/o/dir%2Fa.txt", {**sa_auth, **as_json}, b'{"metadata": {"k": "v"}}'),
        ("POST", f"/storage/v1/b/{bucket}/o/dir%2Fa.txt/copyTo/b/{bucket}/o/b.txt", sa_auth, b""),
        ("DELETE", f"/storage/v1/b/{bucket}/o/dir%2Fa.txt", sa_auth, b""),
        ("DELETE", f"/storage/v1/b/{bucket}/o/dir%2Fa.txt", sa_auth, b""),
        ("POST", "/storage/v1/b?project=p", {**sa_auth, **as_json}, b"{bad"),
        ("PUT", "/storage/v1/b/x", {}, b""),
        # injected faults
        fault({"endpoint": "sts", "statuses": [429, 500, 503, 418, 599]}),
        *[("POST", "/v1/token", form, b"")] * 5,
        fault({"endpoint": "storage", "statuses": [429, 500, 503, 404]}),
        *[("GET", f"/storage/v1/b/{bucket}", sa_auth, b"")] * 4,
        fault({"endpoint": "iam", "statuses": [429, 403]}),
        *[("POST", f"{iam}:generateAccessToken", {**as_json, **fed_auth}, scope)] * 2,
        fault({"endpoint": "crm", "statuses": [500]}),
        ("GET", f"/v1/projects/{info['project_id']}", sa_auth, b""),
        fault({"endpoint": "secretmanager", "statuses": [503]}),
        ("GET", "/v1/projects/p/secrets/s/versions/1:access", {}, b""),
        fault({"endpoint": "certs", "statuses": [500]}),
        ("GET", "/oauth2/v3/certs", {}, b""),
        fault({"endpoint": "oauth2", "statuses": [400]}),
        ("POST", "/token", form, b""),
        fault({"endpoint": "sts", "kinds": ["malformed"]}),
        ("POST", "/v1/token", form, b""),
        fault({"endpoint": "sts", "kinds": ["body"], "statuses": [502], "body": "<html>bad gateway</html>",
               "content_type": "text/html"}),
        ("POST", "/v1/token", form, b""),
        fault({"endpoint": "iam.generateAccessToken", "kinds": ["bad_expiry"]}),
        ("POST", f"{iam}:generateAccessToken", {**as_json, **fed_auth}, scope),
        fault({"endpoint": "iam.generateAccessToken", "kinds": ["bad_expiry"]}),
        ("POST", f"{iam}:generateAccessToken", {**as_json, **fed_auth}, b"{}"),
        fault({"endpoint": "crm", "kinds": ["reset"]}),
        ("GET", f"/v1/projects/{info['project_id']}", sa_auth, b""),
        fault({"endpoint": "storage", "kinds": ["delay"], "delay_seconds": 0.01}),
        ("GET", "/storage/v1", {}, b""),
        # the control plane
        ("GET", "/_emulator/faults", {}, b""),
        ("DELETE", "/_emulator/faults", {}, b""),
        ("POST", "/_emulator/faults", CONTROL_JSON, b'{"endpoint": "nope"}'),
        ("POST", "/_emulator/faults", CONTROL_JSON, b'{"endpoint": "sts", "kinds": ["x"]}'),
        ("POST", "/_emulator/faults", CONTROL_JSON, b'{"endpoint": "sts", "statuses": ["x"]}'),
        ("POST", "/_emulator/faults", CONTROL_JSON, b"{broken"),
        ("PUT", "/_emulator/faults", CONTROL_JSON, b"{}"),
        ("GET", "/_emulator/info", {}, b""),
        ("HEAD", "/_emulator/info", {}, b""),
        ("POST", "/_emulator/info", {}, b""),
        ("GET", "/_emulator/info/", {}, b""),
        ("GET", "/_emulator//info", {}, b""),
        ("GET", "/_emulator/", {}, b""),
        ("GET", "/_emulator/nope", {}, b""),
        ("GET", "/_emulator/aws", {}, b""),
        ("GET", "/_emulator/aws/nope", {}, b""),
        ("POST", "/_emulator/aws//expire", CONTROL_JSON, b'{"access_key_id": "AKIANOPE"}'),
        ("OPTIONS", "/_emulator/info", {}, b""),
        ("GET", "/_emulator/Info", {}, b""),
        ("GET", "/_emulator/config", {}, b""),
        ("PATCH", "/_emulator/config", CONTROL_JSON, b'{"sts_token_ttl_seconds": 1800}'),
        ("PATCH", "/_emulator/config", CONTROL_JSON, b'{"pools": 5}'),
        ("PATCH", "/_emulator/config", CONTROL_JSON, b"{broken"),
        ("PUT", "/_emulator/config", CONTROL_JSON, b'{"nope": 1}'),
        ("DELETE", "/_emulator/config", {}, b""),
        ("GET", "/_emulator/counters", {}, b""),
        ("POST", "/_emulator/counters", {}, b""),
        ("GET", "/_emulator/clock", {}, b""),
        ("POST", "/_emulator/clock", CONTROL_JSON, b'{"advance_seconds": 10}'),
        ("POST", "/_emulator/clock", CONTROL_JSON, b'{"advance_seconds": "x"}'),
        ("POST", "/_emulator/clock", CONTROL_JSON, b'{"offset_seconds": 0}'),
        ("PUT", "/_emulator/clock", CONTROL_JSON, b"{}"),
        ("POST", "/_emulator/service_account_keys", CONTROL_JSON, b"{}"),
        ("POST", "/_emulator/service_account_keys", CONTROL_JSON,
         json.dumps({"email": "nobody@x.iam.gserviceaccount.com"}).encode()),
        ("POST", "/_emulator/service_account_keys", CONTROL_JSON, json.dumps({"email": sa_email}).encode()),
        ("GET", "/_emulator/service_account_keys", {}, b""),
        ("POST", "/_emulator/aws/expire", CONTROL_JSON, b"{}"),
        ("POST", "/_emulator/aws/expire", CONTROL_JSON, b'{"access_key_id": "AKIANOPE"}'),
        ("GET", "/_emulator/aws/expire", {}, b""),
        ("GET", "/_emulator/aws/outbound_federation", {}, b""),
        ("GET", "/_emulator/aws/outbound_federation?account_id=999988887777", {}, b""),
        ("POST", "/_emulator/aws/outbound_federation", CONTROL_JSON, b"{}"),
        ("POST", "/_emulator/aws/outbound_federation", CONTROL_JSON, b'{"enabled": false}'),
        ("DELETE", "/_emulator/aws/outbound_federation", {}, b""),
        ("GET", "/_emulator/requests?endpoint=crm", {}, b""),
        ("GET", "/_emulator/requests?endpoint=", {}, b""),
        ("POST", "/_emulator/requests", {}, b""),
        ("DELETE", "/_emulator/tokens", {}, b""),
        ("GET", "/_emulator/tokens", {}, b""),
        ("GET", f"/storage/v1/b/{bucket}", sa_auth, b""),
        ("GET", "/_emulator/requests", {}, b""),
        ("DELETE", "/_emulator/requests", {}, b""),
        ("GET", "/_emulator/requests", {}, b""),
        ("GET", "/_emulator/reset", {}, b""),
        ("POST", "/_emulator/reset", {}, b""),
        ("GET", "/_emulator/faults", {}, b""),
    ]


def _send(host: str, port: int, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes | None:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
             f"Content-Length: {len(body)}", *[f"{k}: {v}" for k, v in headers.items()]]
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            return None
    return b"".join(chunks)


_VOLATILE = [
    (re.compile(r"ya29\.[A-Za-z0-9_\-.]+"), "<ya29>"),
    (re.compile(r"ey[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"), "<jwt>"),
    (re.compile(r"-----BEGIN ([A-Z ]+)-----[^\"]*?-----END [A-Z ]+-----(\\n)?"), r"<pem \1>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
    (re.compile(r"\"(now|time|server_ms|exp|iat|clock_offset)\": -?[\d.e+-]+"), r'"\1": <n>'),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\"(n|kid|private_key_id|token_fingerprint|etag|md5Hash|crc32c|generation|id|pid|"
                r"\w*_fingerprint|user_agent|x5t|metageneration|client_id|aws_access_key_id|aws_secret_access_key|"
                r"untrusted_aws_access_key_id|untrusted_aws_secret_access_key)\": \"?[^\",}]*\"?"), r'"\1": <v>'),
    (re.compile(r"AKIA[A-Z0-9]{16}|ASIA[A-Z0-9]{16}"), "<aws-key>"),
    (re.compile(r"/tmp/[^\"/]+"), "/tmp/<dir>"),
    (re.compile(r"\b1[6-9]\d{8}(\d{6})?(\.\d+)?\b"), "<epoch>"),
    (re.compile(r"\b[0-9a-f]{40}\b"), "<sha1>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r'password\\": \\"[^\\]+'), "password: <v>"),
]


def _mask(text: str, ports: dict[str, str]) -> str:
    for port, name in ports.items():
        text = text.replace(f":{port}", f":<{name}>")
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def _record(raw: bytes | None, ports: dict[str, str]) -> dict[str, Any]:
    if raw is None:
        return {"reset": True}
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *header_lines = head.decode("latin-1").split("\r\n")
    headers = [line.split(": ", 1) for line in header_lines]
    length = next((v for k, v in headers if k.lower() == "content-length"), None)
    return {
        "status": status,
        "headers": [[k, _mask(v, ports) if k.lower() not in ("date", "server", "content-length") else "<v>"]
                    for k, v in headers],
        "content_length_matches_body": None if length is None else int(length) == len(body),
        "body": _mask(body.decode("utf-8", "backslashreplace"), ports),
    }


def run_corpus(info: dict[str, Any]) -> list[dict[str, Any]]:
    parsed = urllib.parse.urlsplit(info["storage_host"])
    host, port = parsed.hostname, parsed.port
    assert host is not None and port is not None
    ports = {str(port): "google", str(urllib.parse.urlsplit(info["aws_endpoint"]).port): "aws"}
    fed = federated_token(info)
    sa = service_account_token(info)
    results = []
    for method, target, headers, body in _corpus(info):
        sent = {k: v.replace("{fed}", fed).replace("{sa}", sa) for k, v in headers.items()}
        results.append({"request": f"{method} {_mask(target, ports)}", **_record(
            _send(host, port, method, target, sent, body), ports)})
    return results


def test_every_route_answers_exactly_as_recorded(emulator):
    assert run_corpus(emulator.info) == json.loads(GOLDEN.read_text())


if __name__ == "__main__":
    from airflow_provider_gcp_wif.testing import CloudEmulator

    with_emulator = CloudEmulator().start()
    try:
        GOLDEN.write_text(json.dumps(run_corpus(with_emulator.info), indent=1) + "\n")
    finally:
        with_emulator.stop()
