"""Host-wide sharing of the final Google access token between the processes of one OS user (opt-in).

Every Airflow task runs in a new process, so the process-wide cache in :mod:`~airflow_provider_gcp_wif.credentials`
saves nothing between tasks. With ``[gcp_wif] token_cache = host`` the processes of one OS user on one host share
the *final* access token of one (settings, AWS identity) pair through a small file, until its refresh window.

What is stored, and where:

* only the access token, when it was issued, its expiry, the principal it belongs to and the refresh windows —
  never AWS credentials, subject tokens or federated tokens;
* one 0600 file per (settings, AWS identity) digest, in a 0700 directory owned by the current (effective) user.
  The AWS identity is the one the AWS session resolves in the reading process (:meth:`identity_digest`: an
  HMAC-SHA256, under a random per-directory key kept there in a 0600 file, of e.g. the resolved access key id), not
  only the AWS connection's content: two processes whose keyless connection (``aws://``) resolves to different
  identities (container credentials, ``AWS_PROFILE``, ``AWS_ROLE_ARN``, environment keys) never share a file. The
  directory is
  ``$XDG_RUNTIME_DIR/airflow-gcp-wif`` when the session has a runtime directory, else
  ``<tempdir>/airflow-gcp-wif-<uid>`` (``[gcp_wif] token_cache_dir`` chooses another one);
* a directory that is a symlink or belongs to another user is refused (the process cache alone is used, with a
  warning); one of ours with a looser mode is made 0700 again;
* a file that is not a regular file of ours with mode 0600 (or stricter), that does not parse, that names another
  key or principal, or that claims more than a token can be (an expiry beyond its issue time + the token's
  lifetime + :data:`CLAIM_SKEW_SECONDS`, an issue time in the future, refresh windows outside
  [issue time, expiry]) is ignored, and replaced by the next exchange; files are opened with ``O_NOFOLLOW`` relative to
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
import hmac
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

from airflow_provider_gcp_wif import forks
from airflow_provider_gcp_wif.refresh import RefreshWindows

log = logging.getLogger(__name__)

#: Token cache modes of ``[gcp_wif] token_cache``.
PROCESS, HOST = "process", "host"
FORMAT_VERSION = 2
#: How far a file's claims may pass what the reader computes from its own clock (the processes share the host's).
CLAIM_SKEW_SECONDS = 60
_MAX_FILE_BYTES = 64 * 1024
_IDENTITY_KEY_FILE = ".identity-key"
_IDENTITY_KEY_BYTES = 32
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


@dataclass(frozen=True)
class SharedToken:
    """What one process leaves for the others (naive UTC datetimes, as google-auth uses).

    Attributes:
        token: the final Google access token (the service account's, or the federated one without impersonation).
        principal: whom it belongs to (the service account email, or the workload identity provider's audience).
        windows: when Google stops accepting it (``expiry``), from when a process refreshes ahead of expiry
            (``advisory_at``), from when the token is not used any more (``mandatory_at``).
        issued_at: when the process that exchanged for it got it.
    """

    token: str = field(repr=False)
    principal: str
    windows: RefreshWindows
    issued_at: datetime.datetime

    @property
    def expiry(self) -> datetime.datetime:
        return self.windows.expiry


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
        self._identity_key: bytes | None = None

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

    def identity_digest(self, material: str) -> str | None:
        """The keyed digest (HMAC-SHA256 under this directory's random key) of what an AWS session resolved to
        (:meth:`~airflow_provider_gcp_wif.supplier.Boto3Supplier.identity_material`), for the file's key: the
        material itself (an access key id, a token's digest) is never written anywhere. ``None`` when the
        directory is refused (the process cache alone is used)."""
        key = self._identity_key
        if key is None:
            with self._directory() as directory:
                if directory is None:
                    return None
                key = self._identity_key = self._load_identity_key(directory)
            if key is None:
                return None
        return hmac.new(key, material.encode(), hashlib.sha256).hexdigest()

    def _load_identity_key(self, directory: int) -> bytes | None:
        """The directory's identity key: created once (atomically, never replacing another process's), read by
        every process; one that is not a private regular file of ours of the right size is replaced."""
        for _ in range(3):
            try:
                descriptor = os.open(_IDENTITY_KEY_FILE, os.O_RDONLY | _O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
            except FileNotFoundError:
                self._create_identity_key(directory)
                continue
            except OSError:  # a symlink (ELOOP), a FIFO...: not ours to read
                with contextlib.suppress(OSError):
                    os.unlink(_IDENTITY_KEY_FILE, dir_fd=directory)
                continue
            try:
                info = os.fstat(descriptor)
                private = stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077
                data = os.read(descriptor, _IDENTITY_KEY_BYTES + 1) if private else b""
            except OSError:
                data = b""
            finally:
                os.close(descriptor)
            if len(data) == _IDENTITY_KEY_BYTES:
                return data
            log.info("gcp_wif: replacing a host token cache identity key that is not this user's alone")
            with contextlib.suppress(OSError):
                os.unlink(_IDENTITY_KEY_FILE, dir_fd=directory)
        log.warning("gcp_wif: the host token cache %s has no usable identity key; this process exchanges on its own",
                    self.directory)
        return None

    def _create_identity_key(self, directory: int) -> None:
        temporary = f".identity-key.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            _write_private(directory, temporary, secrets.token_bytes(_IDENTITY_KEY_BYTES))
            with contextlib.suppress(FileExistsError):  # another process's came first: that one is used
                os.link(temporary, _IDENTITY_KEY_FILE, src_dir_fd=directory, dst_dir_fd=directory)
        except OSError as err:
            log.warning("gcp_wif: could not create the host token cache's identity key in %s: %s", self.directory, err)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=directory)

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

    def read(self, key: str, principal: str, *, now: datetime.datetime, max_lifetime_seconds: float
             ) -> SharedToken | None:
        """The token another process left for ``key`` and ``principal``, or ``None`` (missing, foreign, too open,
        corrupt, for another key or principal, or claiming more than a token of at most ``max_lifetime_seconds``
        issued by ``now`` can be: such a file is ignored)."""
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
            windows = RefreshWindows(_utc(data["expiry"]), _utc(data["advisory_at"]), _utc(data["mandatory_at"]))
            shared = SharedToken(token, principal, windows, _utc(data["issued_at"]))
        except (ValueError, KeyError, TypeError, OverflowError, OSError):
            log.info("gcp_wif: ignoring a corrupt host token cache file")
            return None
        skew = datetime.timedelta(seconds=CLAIM_SKEW_SECONDS)
        if not (shared.issued_at <= now + skew
                and windows.expiry <= shared.issued_at + datetime.timedelta(seconds=max_lifetime_seconds) + skew
                and shared.issued_at <= windows.advisory_at <= windows.mandatory_at <= windows.expiry):
            log.info("gcp_wif: ignoring a host token cache file that claims more than its token can be")
            return None
        return shared

    def write(self, key: str, shared: SharedToken) -> None:
        """Leave ``shared`` for the other processes (atomically; failures are logged, never raised)."""
        body = json.dumps({
            "version": FORMAT_VERSION, "key": key, "principal": shared.principal, "token": shared.token,
            "expiry": _epoch(shared.windows.expiry), "advisory_at": _epoch(shared.windows.advisory_at),
            "mandatory_at": _epoch(shared.windows.mandatory_at), "issued_at": _epoch(shared.issued_at),
        }).encode()
        with self._directory() as directory:
            if directory is None:
                return
            temporary = f".{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            try:
                _write_private(directory, temporary, body)
                os.replace(temporary, f"{key}.json", src_dir_fd=directory, dst_dir_fd=directory)
            except OSError as err:
                log.warning("gcp_wif: could not write to the host token cache %s: %s", self.directory, err)
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=directory)


def _write_private(directory: int, name: str, body: bytes) -> None:
    """Write ``body`` to a new file ``name`` (0600, never through a link) in the directory ``directory`` refers to."""
    descriptor = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o600, dir_fd=directory)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, body)
    finally:
        os.close(descriptor)


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


forks.register(forks.HOST_CACHE_LOCKS, _close_inherited_locks)
