"""Emulated clouds for offline tests: AWS (moto, signatures verified) and Google STS, IAM Credentials,
Resource Manager and Cloud Storage with Google's error bodies.

Importing this package is cheap: moto, werkzeug and requests are imported only when ``CloudEmulator`` or a
control client is used. See README.md beside this file for the configuration schema and the control plane.

    from airflow_provider_gcp_wif.testing import CloudEmulator

    with CloudEmulator() as emulator:
        print(emulator.info["sts_endpoint"])
        emulator.control.advance_clock(3600)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .defaults import DEFAULT_CONFIG

if TYPE_CHECKING:
    from .control import EmulatorControl, EmulatorControlError
    from .emulator import CloudEmulator

__all__ = ["DEFAULT_CONFIG", "CloudEmulator", "EmulatorControl", "EmulatorControlError"]

_LAZY = {
    "CloudEmulator": ".emulator",
    "EmulatorControl": ".control",
    "EmulatorControlError": ".control",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
