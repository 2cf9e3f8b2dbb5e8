"""Bad values as error messages show them: on one line, truncated, never a whole nested value, and with anything
that may be a credential typed into a URL redacted. Shared by the settings (:mod:`~airflow_provider_gcp_wif.config`),
the endpoint grammar (:mod:`~airflow_provider_gcp_wif.endpoints`) and ``gcp-wif setup``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SHOWN_CHARS = 80  # how much of a bad value an error message shows


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``value`` as an error message shows it: on one line, at most ~2 x ``limit`` characters, never the whole of
    a huge or nested value (no ``repr`` of containers, no ``str`` of huge numbers)."""
    if isinstance(value, str):
        text = repr(value[:limit])
        if len(text) > 2 * limit:
            text = text[: 2 * limit]
        return text + (f"... ({len(value)} characters)" if len(value) > limit or len(text) == 2 * limit else "")
    return json_type(value)


def shown_url(value: Any) -> str:
    """Like :func:`shown`, with anything that may be a credential typed into a URL redacted: the userinfo
    (``user:password@``), the query and the fragment."""
    if not isinstance(value, str):
        return shown(value)
    cut = min((i for i in (value.find("?"), value.find("#")) if i >= 0), default=-1)
    text = value if cut < 0 else value[:cut] + value[cut] + "<redacted>"
    at = text.rfind("@")
    if at >= 0:
        scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text)
        start = scheme.end() if scheme and scheme.end() <= at else 0
        text = text[:start] + "<redacted>" + text[at:]
    return shown(text)


def json_type(value: Any) -> str:
    """What a non-text ``value`` is, in JSON's words (a number is shown when it is not huge)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else f"a {value.bit_length()}-bit number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a JSON object"
    if isinstance(value, list | tuple):
        return "a JSON list"
    return f"a {type(value).__name__[:40]}"
