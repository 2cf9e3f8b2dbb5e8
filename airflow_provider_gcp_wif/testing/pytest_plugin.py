"""pytest fixtures for the emulated clouds.

Enable with ``pytest_plugins = ["airflow_provider_gcp_wif.testing.pytest_plugin"]`` in a ``conftest.py``.

* ``cloud_emulator`` (session): one :class:`CloudEmulator`, started once, stopped at the end of the session.
* ``emulator`` (function): the same emulator after ``control.reset()``, so each test starts from the default
  fixture (configuration, empty log, no faults, real clock, empty buckets).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .emulator import CloudEmulator


@pytest.fixture(scope="session")
def cloud_emulator() -> Iterator[CloudEmulator]:
    from .emulator import CloudEmulator

    emulator = CloudEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def emulator(cloud_emulator: CloudEmulator) -> CloudEmulator:
    cloud_emulator.control.reset()
    return cloud_emulator
