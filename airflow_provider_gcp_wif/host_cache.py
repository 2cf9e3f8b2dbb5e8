"""Host-wide sharing of the final Google access token between the processes of one OS user (opt-in).

Every Airflow task runs in a new process, so the process-wide cache in :mod:`~airflow_provider_gcp_wif.credentials`
saves nothing between tasks. With ``[gcp_wif] token_cache = host`` the processes of one OS user on one host share
the *final* access token of one (settings, AWS identity) pair through a small file, until its refresh window.

What is stored, and where:

* only the access token, its expiry, the principal it belongs to and the refresh windows — never AWS credentials,
  subject tokens or federated tokens;
* one 0600 file per (settings, AWS identity) digest, in a 0700 directory owned by the current (effective) user:
  ``$XDG_RUNTIME_DIR/airflow-gcp-wif`` when the session has a runtime directory, else
  ``<tempdir>/airflow-gcp-wif-<uid>`` (``[gcp_wif] token_cache_dir`` chooses another one);
* a directory that is a symlink or belongs to another user is refused (the process cache alone is used, with a
  warning); one of ours with a looser mode is made 0700 again;
* a file that is not a regular file of ours with mode 0600 (or stricter), that does not parse, or that names another
  key or principal is ignored, and replaced by the next exchange; files are opened with ``O_NOFOLLOW`` relative to
  the directory's descriptor and written atomically (temporary file + ``os.replace`` in the same directory).

A lock file per key (``fcntl.flock``) makes processes that start together wait for one exchange, then read its
token. This module imports no Airflow: the Airflow-facing layer reads the deployment's settings and passes them in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: Token cache modes of ``[gcp_wif] token_cache``.
PROCESS, HOST = "process", "host"
FORMAT_VERSION = 1
_MAX_FILE_BYTES = 64 * 1024
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


@dataclass(frozen=True)
class SharedToken:
    """What one process leaves for the others (naive UTC datetimes, as google-auth uses).

    Attributes:
        token: the final Google access token (the service account's, or the federated one without impersonation).
        expiry: when Google stops accepting it.
        principal: whom it belongs to (the service account email, or the workload identity provider's audience).
        advisory_at: from this moment a process refreshes ahead of expiry.
        mandatory_at: from this moment the token is not used any more.
    """

    token: str = field(repr=False)
    expiry: datetime.datetime
    principal: str
    advisory_at: datetime.datetime
    mandatory_at: datetime.datetime


def default_directory() -> str:
    """``$XDG_RUNTIME_DIR/airflow-gcp-wif`` (per-user, memory-backed, removed at logout) when set, else a per-uid
    directory in the temporary directory."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "airflow-gcp-wif")
    return os.path.join(tempfile.gettempdir(), f"airflow-gcp-wif-{os.geteuid()}")


def _epoch(moment: datetime.datetime) -> float:
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def _utc(epoch: Any) -> datetime.datetime:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, float)):
        raise ValueError("not a timestamp")
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).replace(tzinfo=None)


class HostTokenCache:
    """The token files of one directory.

    Args:
        directory: where the files live; ``None`` = :func:`default_directory`.
        lock_wait_seconds: how long a process waits for another one's exchange before it exchanges on its own.
    """

    def __init__(self, directory: str | None = None, *, lock_wait_seconds: float = 20.0) -> None:
        self.directory = os.path.abspath(directory or default_directory())
        self.lock_wait_seconds = lock_wait_seconds
        self._warned = False

    def __repr__(self) -> str:
        return f"HostTokenCache({self.directory!r})"

    @staticmethod
    def key_for(identity: tuple[Any, ...]) -> str:
        """The file name digest for a process-cache key (settings, AWS identity source): stable across processes, so
        a dataclass in it (the settings) stands for every field it is compared on, not for its short ``repr``."""
        parts = tuple(
            tuple(getattr(part, f.name) for f in dataclasses.fields(part) if f.compare)
            if dataclasses.is_dataclass(part) and not isinstance(part, type) else part
            for part in identity
        )
        return hashlib.sha256(repr(parts).encode()).hexdigest()

    # -- the directory ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _directory(self) -> Iterator[int | None]:
        """A descriptor of the private directory (created 0700 if missing), or ``None`` when it is unsafe."""
        try:
            os.makedirs(os.path.dirname(self.directory), exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.directory, 0o700)
            descriptor = os.open(self.directory, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW)
        except OSError as err:
            reason = "it is a symlink" if err.errno == errno.ELOOP else str(err)
            self._refuse(f"cannot open {self.directory} ({reason})")
            yield None
            return
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                self._refuse(f"{self.directory} belongs to uid {info.st_uid}, not to this user ({os.geteuid()})")
                yield None
                return
            if stat.S_IMODE(info.st_mode) != 0o700:
                os.fchmod(descriptor, 0o700)
            yield descriptor
        finally:
            os.close(descriptor)

    def _refuse(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("gcp_wif: the host token cache is not used: %s; each process exchanges on its own. Fix: "
                        "remove it, or set [gcp_wif] token_cache_dir to a directory only this user owns.", reason)

    # -- lock ------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Hold the key's host-wide lock (or stop waiting after ``lock_wait_seconds`` and go on without it)."""
        with self._directory() as directory:
            if directory is None:
                yield
                return
            try:
                descriptor = os.open(f".{key}.lock", os.O_RDWR | os.O_CREAT | _O_NOFOLLOW, 0o600, dir_fd=directory)
            except OSError as err:
                log.warning("gcp_wif: cannot open the host token cache's lock file: %s", err)
                yield
                return
        _held_locks.add(descriptor)
        try:
            deadline = time.monotonic() + self.lock_wait_seconds
            held = False
            delay = 0.002
            while not held:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        log.warning("gcp_wif: another process held the host token cache's lock for more than %.0f s; "
                                    "exchanging without it", self.lock_wait_seconds)
                        break
                    time.sleep(delay)
                    delay = min(0.02, delay * 1.5)
            yield
        finally:
            if descriptor in _held_locks:  # else a forked child already closed its copy (see below)
                _held_locks.discard(descriptor)
                os.close(descriptor)  # releases the lock

    # -- files -----------------------------------------------------------------------------------------------

    def read(self, key: str, principal: str) -> SharedToken | None:
        """The token another process left for ``key`` and ``principal``, or ``None`` (missing, foreign, too open,
        corrupt, or for another key or principal: such a file is ignored)."""
        with self._directory() as directory:
            if directory is None:
                return None
            try:
                descriptor = os.open(f"{key}.json", os.O_RDONLY | _O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
            except OSError:
                return None
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
                log.info("gcp_wif: ignoring a host token cache file that is not this user's alone")
                return None
            raw = os.read(descriptor, _MAX_FILE_BYTES)
        except OSError:
            return None
        finally:
            os.close(descriptor)
        try:
            data = json.loads(raw)
            if data["version"] != FORMAT_VERSION or data["key"] != key or data["principal"] != principal:
                return None
            token = data["token"]
            if not isinstance(token, str) or not token:
                return None
            return SharedToken(token, _utc(data["expiry"]), principal, _utc(data["advisory_at"]),
                               _utc(data["mandatory_at"]))
        except (ValueError, KeyError, TypeError, OverflowError, OSError):
            log.info("gcp_wif: ignoring a corrupt host token cache file")
            return None

    def write(self, key: str, shared: SharedToken) -> None:
        """Leave ``shared`` for the other processes (atomically; failures are logged, never raised)."""
        body = json.dumps({
            "version": FORMAT_VERSION, "key": key, "principal": shared.principal, "token": shared.token,
            "expiry": _epoch(shared.expiry), "advisory_at": _epoch(shared.advisory_at),
            "mandatory_at": _epoch(shared.mandatory_at),
        }).encode()
        with self._directory() as directory:
            if directory is None:
                return
            temporary = f".{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            try:
                descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o600,
                                     dir_fd=directory)
                try:
                    os.fchmod(descriptor, 0o600)
                    os.write(descriptor, body)
                finally:
                    os.close(descriptor)
                os.replace(temporary, f"{key}.json", src_dir_fd=directory, dst_dir_fd=directory)
            except OSError as err:
                log.warning("gcp_wif: could not write to the host token cache %s: %s", self.directory, err)
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=directory)


#: Lock-file descriptors of open ``locked`` contexts. A flock belongs to the open file, which a forked child shares:
#: a child that kept its copy (the thread holding the lock does not exist in the child, so it never closes it) would
#: hold the lock after the parent released it, for the child's whole life. The child closes its copies (never
#: ``LOCK_UN``, which would release the parent's lock too).
_held_locks: set[int] = set()


def _close_inherited_locks() -> None:
    for descriptor in list(_held_locks):
        with contextlib.suppress(OSError):
            os.close(descriptor)
    _held_locks.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)
