"""Which Google hooks work with a ``gcp_wif`` connection: generate (or check) ``docs/coverage.md``.

Every ``GoogleBaseHook`` / ``GoogleBaseAsyncHook`` subclass of the installed Google provider (and the provider's
other hooks that take a ``gcp_conn_id``) is built with a ``gcp_wif`` connection — required constructor arguments get
dummies — and asked for the credentials it would use: ``get_credentials()`` for sync hooks, ``get_sync_hook()`` and
``get_token()`` (``_CredentialsToken``, the triggerer's path) for async ones. Nothing here makes a network call.
Each class's own source is then searched for credential paths that do not go through those credentials (key fields
read directly, gcloud, credential files for child processes, SQLAlchemy engines, the Cloud SQL proxy, Google Ads).
Modules whose optional dependencies are missing are searched in their source only, and say so.

    python scripts/hook_coverage.py            # write docs/coverage.md
    python scripts/hook_coverage.py --check    # exit 1 (and print a diff) when docs/coverage.md is stale
    python scripts/hook_coverage.py --json     # the rows, for tests
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import difflib
import importlib
import inspect
import json
import os
import pkgutil
import re
import sys
import time
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "docs" / "coverage.md"
CONN_ID = "gcp_wif_coverage"
# The differential: a hook that fails with gcp_wif is built again with an anonymous Google Cloud connection; if that
# fails too, the hook is broken in this provider for every connection, not by gcp_wif.
STOCK_CONN_ID = "google_cloud_coverage"
STOCK_CONNECTION = {
    "conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "coverage-project"},
}
PROVIDER = "apache-airflow-providers-google"
CONNECTION = {
    "conn_type": "gcp_wif",
    "extra": {
        "aws_conn_id": "aws_default", "project_number": "123456789012", "pool_id": "aws-pool",
        "provider_id": "aws-provider", "impersonation_chain": "airflow@coverage-project.iam.gserviceaccount.com",
        "project": "coverage-project",
    },
}
BASES = ("GoogleBaseHook", "GoogleBaseAsyncHook")

# Credential paths that do not (or not only) go through the hook's credentials: the pattern searched in the class's
# own source, a short name for the table, and what it means with a gcp_wif connection.
PATHS: dict[str, tuple[str, str, str]] = {
    "key-fields": (
        r"""["'](key_path|keyfile_dict|credential_config_file|key_secret_name)["']""",
        "reads key fields",
        "reads `key_path` / `keyfile_dict` / `credential_config_file` from the connection itself; a gcp_wif "
        "connection has none, so that code falls back to Application Default Credentials",
    ),
    "credential-file": (
        r"provide_gcp_credential_file|service_file_as_context",
        "credential file",
        "child processes get an external-account file plus the current AWS credentials "
        "(`provide_gcp_credential_file_as_context`, extended by this provider); they need google-auth >= 2.29 or "
        "another client that reads external-account files, and a chain with delegates is refused",
    ),
    "gcloud": (
        r"provide_authorized_gcloud",
        "gcloud",
        "runs `gcloud` logged in with the external-account file (`provide_authorized_gcloud`, extended by this "
        "provider): needs the gcloud CLI in the image (MWAA has none)",
    ),
    "sqlalchemy": (
        r"create_engine\(",
        "SQLAlchemy engine",
        "`get_sqlalchemy_engine()` builds its own client from `key_path` / `keyfile_dict` or Application Default "
        "Credentials, not the hook's. Workaround: use the hook's `get_records` / `get_pandas_df` / `get_client()`, "
        "which use the gcp_wif credentials",
    ),
    "cloud-sql-proxy": (
        r"get_sqlproxy_runner|CloudSqlProxyRunner",
        "Cloud SQL proxy",
        "the Cloud SQL proxy child reads `key_path` / `keyfile_dict` only, else the default account. Workaround: "
        "`use_iam` with gcloud in the image (login token through `provide_authorized_gcloud`), or connect "
        "without the proxy (private IP / SSL), or run the proxy as a sidecar with its own identity",
    ),
    "google-ads": (
        r"googleads|GoogleAdsClient",
        "Google Ads client",
        "Google Ads' service-account method needs a key file (`keyfile_dict`) for domain-wide delegation; its "
        "OAuth refresh-token method (connection `google_ads_default`) does not use the gcp connection at all",
    ),
    "api-key": (
        r"api_key=self\.\w*api_key[,)\s]",
        "API key",
        "the client is made with an API key given to the hook, not with Google credentials: the connection's "
        "type does not matter",
    ),
}

# Why a hook that does not work does not, and what to do (written by hand; the table says when a new one appears).
FAILURES = {
    "marketing_platform.hooks.search_ads.GoogleSearchAdsReportingHook":
        "it builds OAuth user credentials from its connection's `google_search_ads_client` extra instead of the "
        "hook's; give it a connection with those OAuth client credentials",
    "ads.hooks.ads.GoogleAdsHook":
        "not a GoogleBaseHook: see Google Ads client above",
}

STATUS_TEXT = {
    "works": "works",
    "works-child": "works (child processes through the credential file)",
    "works-gcloud": "works; gcloud paths need the gcloud CLI",
    "partial": "works except the paths listed",
    "api-key": "API key, not credentials",
    "fails": "does not work",
    "broken": "does not work with any connection in this provider release",
    "unchecked": "not checked here (optional dependency missing): source only",
}


@dataclass
class Row:
    hook: str
    kind: str
    credentials: str
    paths: list[str] = field(default_factory=list)
    status: str = "works"
    note: str = ""


def dummy(parameter: inspect.Parameter, hints: dict[str, Any]) -> Any:
    """A harmless value for a required constructor argument, by its annotation."""
    annotation = str(hints.get(parameter.name, parameter.annotation)).lower()
    for marker, value in (("bool", False), ("int", 1), ("float", 1.0), ("dict", {}), ("mapping", {}),
                          ("list", []), ("sequence", [])):
        if marker in annotation:
            return value
    return "coverage-dummy"


def required_dummies(hook_class: type) -> dict[str, Any]:
    init = hook_class.__init__
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # noqa: BLE001 - annotations naming optional packages: fall back to the raw ones
        hints = {}
    return {
        name: dummy(parameter, hints)
        for name, parameter in list(inspect.signature(init).parameters.items())[1:]
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        and parameter.default is parameter.empty
    }


def build(hook_class: type, conn_id: str = CONN_ID) -> Any:
    """The hook with a gcp_wif connection; an async hook also gets what its sync hook requires (it passes its
    keyword arguments on)."""
    arguments = required_dummies(hook_class)
    sync_hook_class = getattr(hook_class, "sync_hook_class", None)
    if isinstance(sync_hook_class, type):
        arguments = {**required_dummies(sync_hook_class), **arguments}
    parameters = inspect.signature(hook_class.__init__).parameters
    if "gcp_conn_id" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        arguments["gcp_conn_id"] = conn_id
    return hook_class(**arguments)


TIMINGS = {"import": 0.0, "hooks": 0.0}


def credentials_of(hook_class: type, base: type, async_base: type) -> tuple[str, bool]:
    """The credentials the hook would use with gcp_wif, and whether it works with an anonymous Google Cloud
    connection (only asked when gcp_wif gives no WifCredentials)."""
    start = time.perf_counter()
    try:
        credentials = _credentials_of(hook_class, async_base, CONN_ID)
        if credentials == "WifCredentials":
            return credentials, True
        return credentials, not _credentials_of(hook_class, async_base, STOCK_CONN_ID).startswith("error")
    finally:
        TIMINGS["hooks"] += time.perf_counter() - start


def _credentials_of(hook_class: type, async_base: type, conn_id: str) -> str:
    """The class name of the credentials the hook would use, or why there are none."""
    from airflow_provider_gcp_wif.credentials import WifCredentials

    wanted = WifCredentials if conn_id == CONN_ID else object
    try:
        hook = build(hook_class, conn_id)
        if isinstance(hook, async_base):
            sync_hook = asyncio.run(hook.get_sync_hook())
            token = asyncio.run(hook.get_token())
            credentials = token.credentials
            if not isinstance(sync_hook.get_credentials(), wanted):
                return f"sync hook: {type(sync_hook.get_credentials()).__name__}"
            own = getattr(hook, "get_credentials", None)  # some async hooks have their own (awaitable) one
            if own is not None and inspect.iscoroutinefunction(own):
                mine = asyncio.run(own())
                if not isinstance(mine, wanted):
                    return f"get_credentials(): {type(mine).__name__}"
        else:
            credentials = hook.get_credentials()
    except Exception as err:  # noqa: BLE001 - the table records it
        message = str(err).splitlines()[0] if str(err) else ""
        return f"error: {type(err).__name__}: {message[:100]}"
    return type(credentials).__name__


def own_paths(source: str) -> list[str]:
    return [name for name, (pattern, _, _) in PATHS.items() if re.search(pattern, source)]


def status_of(row: Row, works_with_stock: bool = True) -> str:
    if row.credentials.startswith("not importable"):
        return "unchecked"
    if "api-key" in row.paths:
        return "api-key"
    if row.credentials != "WifCredentials":
        return "fails" if works_with_stock or row.hook in FAILURES else "broken"
    if {"key-fields", "sqlalchemy", "cloud-sql-proxy", "google-ads"} & set(row.paths):
        return "partial"
    if "gcloud" in row.paths:
        return "works-gcloud"
    if "credential-file" in row.paths:
        return "works-child"
    return "works"


def hook_modules(package: Any) -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
                  if ".hooks." in m.name and not m.name.endswith(".base_google"))


def takes_gcp_conn_id(cls: type) -> bool:
    try:
        return "gcp_conn_id" in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False


def collect() -> tuple[str, list[Row]]:
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(CONNECTION)
    os.environ[f"AIRFLOW_CONN_{STOCK_CONN_ID.upper()}"] = json.dumps(STOCK_CONNECTION)
    import airflow.providers.google as google
    from airflow.providers.google.common.hooks import base_google

    import airflow_provider_gcp_wif.plugin  # noqa: F401 - what every Airflow process imports

    try:
        from airflow.sdk.bases.hook import BaseHook
    except ImportError:
        from airflow.hooks.base import BaseHook  # type: ignore[no-redef]  # Airflow 2

    from importlib.metadata import version

    base, async_base = base_google.GoogleBaseHook, base_google.GoogleBaseAsyncHook
    prefix = google.__name__ + "."
    rows: list[Row] = []
    for module_name in hook_modules(google):
        short = module_name[len(prefix):]
        start = time.perf_counter()
        try:
            module = importlib.import_module(module_name)
        except Exception as err:  # noqa: BLE001 - optional dependencies (Beam, kubernetes, paramiko, ...)
            rows.extend(rows_from_source(module_name, short, err))
            continue
        finally:
            TIMINGS["import"] += time.perf_counter() - start
        for name, cls in sorted(vars(module).items()):
            if not inspect.isclass(cls) or cls.__module__ != module_name or not issubclass(cls, BaseHook):
                continue
            google_hook = issubclass(cls, (base, async_base))
            if not google_hook and not takes_gcp_conn_id(cls):
                continue
            kind = "async" if issubclass(cls, async_base) else "sync" if google_hook else "other"
            credentials, works_with_stock = (credentials_of(cls, base, async_base) if google_hook
                                             else ("not a GoogleBaseHook", True))
            row = Row(f"{short}.{name}", kind, credentials, own_paths(inspect.getsource(cls)))
            row.status = status_of(row, works_with_stock) if google_hook else ("partial" if row.paths else "fails")
            rows.append(row)
    return version(PROVIDER), rows


def rows_from_source(module_name: str, short: str, err: Exception) -> list[Row]:
    spec = importlib.util.find_spec(module_name)
    source = Path(spec.origin).read_text() if spec and spec.origin else ""
    reason = f"not importable: {type(err).__name__}: {str(err).splitlines()[0][:80] if str(err) else ''}"
    rows = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef) or not node.name.endswith("Hook"):
            continue
        bases = [ast.unparse(b) for b in node.bases]
        if not any(b.endswith(BASES) or b.endswith("Hook") for b in bases):
            continue
        segment = ast.get_source_segment(source, node) or ""
        kind = "async" if any(b.endswith("AsyncHook") for b in bases) else "sync"
        if not any(b.endswith(BASES) for b in bases) and "gcp_conn_id" not in segment:
            continue
        row = Row(f"{short}.{node.name}", kind, reason, own_paths(segment))
        row.status = "unchecked"
        rows.append(row)
    return rows


def render(provider_version: str, rows: list[Row]) -> str:
    counts = {key: sum(row.status == key for row in rows) for key in STATUS_TEXT}
    lines = [
        "# Google hooks with a `gcp_wif` connection",
        "",
        f"Generated by `python scripts/hook_coverage.py` from {PROVIDER} {provider_version}: do not edit by hand.",
        "`tests/airflow/test_coverage.py` regenerates it and fails when this table and the installed provider",
        "disagree. Each hook was built with a `gcp_wif` connection (dummies for required arguments) and asked for",
        "its credentials (`get_credentials()`; async hooks: `get_sync_hook()` and `get_token()`, the triggerer's",
        "path); its own source was searched for credential paths that bypass them. No request was made.",
        "",
        "Summary: " + ", ".join(f"{counts[key]} {STATUS_TEXT[key]}" for key in STATUS_TEXT if counts[key]) + ".",
        "",
        "| hook | kind | credentials with gcp_wif | other credential paths | status |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        paths = ", ".join(PATHS[p][1] for p in row.paths) or "-"
        credentials = row.credentials.replace("|", "\\|")
        lines.append(f"| `{row.hook}` | {row.kind} | {credentials} | {paths} | {STATUS_TEXT[row.status]} |")
    lines += ["", "## What the other credential paths mean, and the workaround", ""]
    for key, (_, title, meaning) in PATHS.items():
        hooks = [row.hook for row in rows if key in row.paths]
        if hooks:
            lines.append(f"- **{title}** ({', '.join(f'`{h}`' for h in hooks)}): {meaning}.")
    for row in rows:
        if row.status == "fails":
            why = FAILURES.get(row.hook, "not yet explained: see the credentials column")
            lines.append(f"- **does not work**: `{row.hook}` ({row.credentials}): {why}.")
        elif row.status == "broken":
            lines.append(f"- **broken in this release**: `{row.hook}` ({row.credentials}) fails the same way with an "
                         "anonymous Google Cloud connection: a bug of the Google provider, not of gcp_wif.")
    lines += [
        "",
        "Hooks marked *not checked here* could not be imported in the environment that generated this table (an",
        "optional dependency of the Google provider is missing); their rows come from their source alone. They are",
        "`GoogleBaseHook` subclasses, so their in-process credentials are the extended ones as for every other",
        "hook; the paths listed are what their source does besides.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when docs/coverage.md is stale")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    start = time.perf_counter()
    provider_version, rows = collect()
    elapsed = time.perf_counter() - start
    if args.json:
        print(json.dumps({"provider": provider_version, "seconds": round(elapsed, 1),
                          "timings": {k: round(v, 2) for k, v in TIMINGS.items()},
                          "rows": [asdict(row) for row in rows]}))
        return 0
    text = render(provider_version, rows)
    if args.check:
        current = TABLE.read_text() if TABLE.exists() else ""
        if current != text:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                       "docs/coverage.md (committed)", "installed provider"))
            return 1
        return 0
    TABLE.write_text(text)
    print(f"wrote {TABLE.relative_to(ROOT)}: {len(rows)} hooks in {elapsed:.1f} s (importing their modules "
          f"{TIMINGS['import']:.1f} s, building and asking them {TIMINGS['hooks']:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
