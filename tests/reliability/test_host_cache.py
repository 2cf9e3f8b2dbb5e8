"""The host token cache (``[gcp_wif] token_cache = host``), proven with real processes against the emulated clouds:
what is stored and with which permissions, files and directories that are not this user's alone, corrupt files,
identity separation, N processes starting at once (one exchange), expiry, and the process cache staying the
default. Exchanges are counted in the emulator's request log."""

from __future__ import annotations

import datetime
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif.host_cache import HostTokenCache
from airflow_provider_gcp_wif.testing.state import fingerprint
from tests.fixtures import endpoint_counts

ROOT = Path(__file__).resolve().parents[2]
FOREIGN_UID = 12345
STORED_FIELDS = {"version", "key", "principal", "token", "expiry", "advisory_at", "mandatory_at", "issued_at"}


def start(spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.reliability.host_cache_worker", json.dumps(spec)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def task(info: dict[str, Any], cache_dir: Path | None, **spec: Any) -> dict[str, Any]:
    """One fresh process, run to completion."""
    return finish(start({"info": info, "identity": "role", "cache_dir": str(cache_dir) if cache_dir else None,
                         **spec}))


def token_files(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("*.json"))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "host-cache"


def test_one_exchange_for_many_tasks_in_sequence_and_the_file_holds_only_the_final_token(emulator, aws_env,
                                                                                          cache_dir):
    results = [task(aws_env, cache_dir) for _ in range(3)]
    assert endpoint_counts(emulator) == (1, 1)
    assert len({r["token"] for r in results}) == 1
    assert all(r["announced"] for r in results), "a process that reads the token must announce it to the masker"
    assert [r["exchanges"] for r in results] == [1, 0, 0]

    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    assert cache_dir.stat().st_uid == os.geteuid()
    [path] = token_files(cache_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_uid == os.geteuid()
    raw = path.read_text()
    stored = json.loads(raw)
    assert set(stored) == STORED_FIELDS
    assert stored["principal"] == aws_env["service_account"]
    [impersonation] = emulator.control.requests("iam.generateAccessToken")
    [exchange] = emulator.control.requests("sts")
    assert fingerprint(stored["token"]) == impersonation["issued_token_fingerprint"] == results[0]["token"]
    # never the federated token, never AWS credentials
    assert fingerprint(stored["token"]) != exchange["token_fingerprint"]
    assert aws_env["aws_secret_access_key"] not in raw and aws_env["aws_access_key_id"] not in raw
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".tmp")]


def test_eight_processes_starting_at_once_make_one_exchange(emulator, aws_env, cache_dir, tmp_path):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    processes = [start({"info": aws_env, "identity": "role", "cache_dir": str(cache_dir),
                        "barrier_dir": str(barrier)}) for _ in range(8)]
    deadline = time.monotonic() + 170
    while len(list(barrier.glob("ready-*"))) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    (barrier / "go").touch()
    results = [finish(p) for p in processes]
    assert all(r["waited"] > 0 for r in results), "every process must have been ready before the common start"
    assert endpoint_counts(emulator) == (1, 1)
    assert len({r["token"] for r in results}) == 1
    assert sorted(r["exchanges"] for r in results) == [0] * 7 + [1]
    assert all(r["announced"] for r in results)


def _tamper_and_expect_a_new_exchange(emulator, aws_env, cache_dir, tamper) -> None:
    first = task(aws_env, cache_dir)
    [path] = token_files(cache_dir)
    tamper(path)
    second = task(aws_env, cache_dir)
    assert endpoint_counts(emulator) == (2, 2), "the tampered file must be ignored"
    assert second["token"] != first["token"]
    [path] = token_files(cache_dir)
    info = path.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.geteuid(), 0o600), "and replaced by a private one"
    assert fingerprint(json.loads(path.read_text())["token"]) == second["token"]
    third = task(aws_env, cache_dir)
    assert third["token"] == second["token"] and endpoint_counts(emulator) == (2, 2)


def test_a_file_owned_by_another_user_is_ignored_and_replaced(emulator, aws_env, cache_dir):
    _tamper_and_expect_a_new_exchange(emulator, aws_env, cache_dir, lambda path: os.chown(path, FOREIGN_UID, -1))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_group_or_world_readable_file_is_ignored_and_replaced(emulator, aws_env, cache_dir, mode):
    _tamper_and_expect_a_new_exchange(emulator, aws_env, cache_dir, lambda path: path.chmod(mode))


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"version": 1}', b"\xff\xfe garbage",
                                     b'{"version": 1, "key": "k", "principal": "p", "token": 5, "expiry": "x",'
                                     b' "advisory_at": null, "mandatory_at": []}'])
def test_a_corrupt_file_is_ignored_and_replaced(emulator, aws_env, cache_dir, content):
    _tamper_and_expect_a_new_exchange(emulator, aws_env, cache_dir, lambda path: path.write_bytes(content))


DAY = 86400.0


def _forge(change):
    """Rewrite a real token file (its key, principal and live token kept) to claim more than the token can be."""
    def tamper(path: Path) -> None:
        data = json.loads(path.read_text())
        data.setdefault("issued_at", data["expiry"] - 3600)
        change(data)
        path.write_text(json.dumps(data))
    return tamper


FORGERIES = {
    # a life far beyond issue time + lifetime, with windows to match: served for a day
    "long-life": lambda d: d.update(expiry=d["expiry"] + DAY, advisory_at=d["advisory_at"] + DAY,
                                    mandatory_at=d["mandatory_at"] + DAY),
    # refresh windows after the expiry: never refreshed
    "windows-after-expiry": lambda d: d.update(advisory_at=d["expiry"] + DAY, mandatory_at=d["expiry"] + DAY),
    # used past its expiry when a renewal fails (the last window after the expiry)
    "mandatory-after-expiry": lambda d: d.update(mandatory_at=d["expiry"] + DAY),
    # issued tomorrow, every claim shifted with it
    "issued-in-the-future": lambda d: d.update(issued_at=d["issued_at"] + DAY, expiry=d["expiry"] + DAY,
                                               advisory_at=d["advisory_at"] + DAY,
                                               mandatory_at=d["mandatory_at"] + DAY),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_file_claiming_more_than_its_token_can_be_is_ignored_and_replaced(emulator, aws_env, cache_dir, forgery):
    """Expiry at most issue time + lifetime (+ CLAIM_SKEW_SECONDS), issued no later than now, refresh windows
    inside [issue time, expiry]: a file claiming more is not served."""
    _tamper_and_expect_a_new_exchange(emulator, aws_env, cache_dir, _forge(FORGERIES[forgery]))


def test_a_symlink_in_place_of_the_file_is_not_followed(emulator, aws_env, cache_dir, tmp_path):
    target = tmp_path / "elsewhere.json"

    def swap(path: Path) -> None:
        target.write_bytes(path.read_bytes())
        target.chmod(0o600)
        path.unlink()
        path.symlink_to(target)

    _tamper_and_expect_a_new_exchange(emulator, aws_env, cache_dir, swap)
    assert target.exists() and not (cache_dir / token_files(cache_dir)[0].name).is_symlink()


def test_a_file_of_another_identity_is_ignored(emulator, aws_env, cache_dir):
    """A token file copied under another key (the same directory, the same user) must not be taken."""
    first = task(aws_env, cache_dir)
    [path] = token_files(cache_dir)
    data = json.loads(path.read_text())
    other_principal = dict(data, principal=aws_env["target_service_account"])
    path.write_text(json.dumps(other_principal))
    second = task(aws_env, cache_dir)
    other_key = dict(data, key="0" * 64)
    [path] = token_files(cache_dir)
    path.write_text(json.dumps(other_key))
    third = task(aws_env, cache_dir)
    assert endpoint_counts(emulator) == (3, 3)
    assert len({first["token"], second["token"], third["token"]}) == 3


def test_two_connections_and_two_aws_identities_never_share(emulator, aws_env, cache_dir):
    emulator.control.set_bucket_iam(aws_env["bucket"], "roles/storage.objectViewer", ["allUsers"])
    kinds = [("role", {}),  # impersonating the service account
             ("role", {"impersonation_chain": None}),  # another connection: direct access, same AWS identity
             ("user", {"impersonation_chain": None})]  # the same connection settings, another AWS identity
    first = [task(aws_env, cache_dir, identity=identity, extras=extras) for identity, extras in kinds]
    again = [task(aws_env, cache_dir, identity=identity, extras=extras) for identity, extras in kinds]
    assert len({r["token"] for r in first}) == 3
    assert [r["token"] for r in again] == [r["token"] for r in first]
    assert endpoint_counts(emulator) == (3, 1)
    principals = {r["principal"] for r in emulator.control.requests("sts")}
    assert len(principals) == 2, principals
    assert len(token_files(cache_dir)) == 3


def test_a_new_exchange_once_the_shared_token_reaches_its_refresh_window(emulator, aws_env, cache_dir):
    emulator.control.set_token_ttl(iam=20)  # advisory window: the last 5 s (a quarter of the lifetime)
    first = task(aws_env, cache_dir)
    second = task(aws_env, cache_dir)
    [path] = token_files(cache_dir)
    advisory_at = json.loads(path.read_text())["advisory_at"]
    assert time.time() < advisory_at, "the second task must have run before the window"
    assert second["token"] == first["token"] and endpoint_counts(emulator)[1] == 1
    # The third task runs 0.2 s into the window: its clock and the emulator's are moved there, nobody sleeps.
    ahead = advisory_at - time.time() + 0.2
    emulator.control.set_clock_offset(ahead)
    third = task(aws_env, cache_dir, clock_offset_seconds=ahead)
    assert third["token"] != first["token"]
    assert endpoint_counts(emulator)[1] == 2
    expiry = datetime.datetime.fromtimestamp(json.loads(path.read_text())["expiry"], datetime.timezone.utc)
    assert expiry > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ahead)


def test_a_directory_of_another_user_is_refused(emulator, aws_env, cache_dir):
    cache_dir.mkdir(mode=0o700)
    os.chown(cache_dir, FOREIGN_UID, -1)
    task(aws_env, cache_dir)
    task(aws_env, cache_dir)
    assert endpoint_counts(emulator) == (2, 2), "each process exchanges on its own"
    assert token_files(cache_dir) == []


def test_a_symlinked_directory_is_refused(emulator, aws_env, cache_dir, tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    cache_dir.symlink_to(real)
    task(aws_env, cache_dir)
    task(aws_env, cache_dir)
    assert endpoint_counts(emulator) == (2, 2)
    assert list(real.iterdir()) == []


def test_a_too_open_directory_of_ours_is_made_private(emulator, aws_env, cache_dir):
    cache_dir.mkdir(mode=0o755)
    cache_dir.chmod(0o777)
    task(aws_env, cache_dir)
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700


def test_default_directory_is_private_per_user(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert HostTokenCache().directory.endswith(f"airflow-gcp-wif-{os.geteuid()}")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert HostTokenCache().directory == str(tmp_path / "airflow-gcp-wif")


def _airflow_env(info: dict[str, Any], **deployment: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__GCP_WIF__TOKEN_CACHE")}
    env.update(info["env"])
    env.update(deployment)
    return env


def _airflow_tasks(info: dict[str, Any], env: dict[str, str], count: int) -> list[dict[str, Any]]:
    results = []
    for _ in range(count):
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.host_cache_worker",
             json.dumps({"info": info, "airflow": True})],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        results.append(finish(process))
    return results


def test_through_airflow_the_process_cache_stays_the_default(emulator, aws_env, tmp_path):
    env = _airflow_env(aws_env, XDG_RUNTIME_DIR=str(tmp_path))
    _airflow_tasks(aws_env, env, 2)
    assert endpoint_counts(emulator) == (2, 2)
    assert not (tmp_path / "airflow-gcp-wif").exists()


def test_through_airflow_the_deployment_opts_in(emulator, aws_env, cache_dir):
    env = _airflow_env(aws_env, AIRFLOW__GCP_WIF__TOKEN_CACHE="host", AIRFLOW__GCP_WIF__TOKEN_CACHE_DIR=str(cache_dir))
    results = _airflow_tasks(aws_env, env, 2)
    assert endpoint_counts(emulator) == (1, 1)
    assert results[0]["token"] == results[1]["token"] and results[1]["announced"]
    # a task that finds the token still resolves its own AWS identity (the cache's key), so both import boto3
    assert [r["imported_boto3"] for r in results] == [True, True]
    assert [r["exchanges"] for r in results] == [1, 0]
    assert len(token_files(cache_dir)) == 1


def test_a_connection_cannot_opt_in(emulator, aws_env, cache_dir):
    """Extras are the connection editor's: a token_cache extra is not a deployment setting (it is ignored)."""
    conn = json.loads(aws_env["env"]["AIRFLOW_CONN_GCP_WIF_DEFAULT"])
    conn["extra"].update(token_cache="host", token_cache_dir=str(cache_dir))
    _airflow_tasks(aws_env, _airflow_env(aws_env, AIRFLOW_CONN_GCP_WIF_DEFAULT=json.dumps(conn)), 2)
    assert endpoint_counts(emulator) == (2, 2)
    assert not cache_dir.exists()


# -- the AWS identity a keyless connection resolves to (#20 item 2) ---------------------------------------------

IDENTITY_SOURCES = ["user", "untrusted", "ecs", "ec2_imds", "eks_irsa", "profile"]
#: Sources whose identity is the same in every process (static keys; a role assumed the same way by the same
#: identity): two processes of one of them must still share one exchange.
STABLE_SOURCES = {"user", "eks_irsa", "profile"}


def identity_env(info: dict[str, Any], source: str) -> dict[str, str]:
    """The ``AWS_*`` variables of a task process whose ambient AWS identity comes from ``source``."""
    env = {"AWS_REGION": info["aws_region"], "AWS_DEFAULT_REGION": info["aws_region"],
           "AWS_ENDPOINT_URL_STS": info["aws_endpoint"], "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
           "AWS_CONFIG_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"}
    if source == "user":
        env.update(AWS_ACCESS_KEY_ID=info["aws_access_key_id"], AWS_SECRET_ACCESS_KEY=info["aws_secret_access_key"])
    elif source == "untrusted":
        env.update(AWS_ACCESS_KEY_ID=info["untrusted_aws_access_key_id"],
                   AWS_SECRET_ACCESS_KEY=info["untrusted_aws_secret_access_key"])
    else:
        env.update({k: v for k, v in info["aws_identity_sources"][source]["env"].items() if k.startswith("AWS_")})
    return env


@settings(max_examples=4, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(pair=st.tuples(st.sampled_from(IDENTITY_SOURCES), st.sampled_from(IDENTITY_SOURCES)))
@example(pair=("user", "untrusted"))  # the untrusted identity must not get the trusted one's token
@example(pair=("ecs", "eks_irsa"))  # two roles' sessions of one keyless connection
@example(pair=("profile", "profile"))  # one identity: still one exchange
def test_a_token_read_from_the_host_cache_was_minted_for_the_readers_own_aws_identity(emulator, tmp_path_factory,
                                                                                       pair):
    """Two task processes of one OS user, one after the other, with the same keyless AWS connection (``aws://``:
    its content names no identity) and the same settings, each with its own ambient AWS identity. Oracle: the
    emulated STS logs which AWS caller each token was minted for, and each process asks AWS who it is; every
    token a process ends up with was minted for that process's own caller (a process whose identity Google does
    not trust fails, it never borrows another's token)."""
    info = emulator.info
    cache_dir = tmp_path_factory.mktemp("host-cache")
    results = [task(info, cache_dir, identity="ambient", aws_env=identity_env(info, source), report_arn=True,
                    report_errors=True, extras={"impersonation_chain": None}) for source in pair]
    minted_for: dict[str, set[str]] = {}
    for entry in emulator.control.requests("sts"):
        if entry.get("status") == 200 and entry.get("token_fingerprint"):
            minted_for.setdefault(entry["token_fingerprint"], set()).add(entry["aws_arn"])
    for source, result in zip(pair, results, strict=True):
        if "token" not in result:
            assert source == "untrusted" and result["error"] == "sts_exchange", (source, result)
            continue
        assert minted_for.get(result["token"]) == {result["arn"]}, (pair, source, result, minted_for)
    if pair[0] == pair[1] and pair[0] in STABLE_SOURCES:
        assert results[1]["exchanges"] == 0 and results[1]["token"] == results[0]["token"], results
