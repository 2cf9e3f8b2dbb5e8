from __future__ import annotations

from .helpers import components

__all__ = ["components"]
