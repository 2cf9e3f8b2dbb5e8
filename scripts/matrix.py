"""Compatibility matrix: run ``tests/airflow`` under each MWAA image's constraints.

For each environment ``mwaa-<version>`` (``constraints/mwaa/airflow-<version>.txt``) this builds
``.venv-mwaa-<version>`` inside the repository with ``uv`` (Python 3.12, as the constraint files), installs
``apache-airflow==<version>``, the Google and Amazon providers and this project (editable, with its ``testing``
extra and the test tools) under that constraint file, then runs ``pytest tests/airflow`` in it. The install is
skipped while the environment's stamp file is newer than ``pyproject.toml``, the constraint file and this script.

The latest releases are the main ``.venv`` (``make test`` runs the whole suite there first).

    python scripts/matrix.py                      # every environment
    python scripts/matrix.py --env mwaa-2.11.2    # one (repeatable)
    python scripts/matrix.py --install-only
    python scripts/matrix.py -- -k metadata -x    # after --: extra pytest arguments
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints" / "mwaa"
ENVIRONMENTS = {f"mwaa-{version}": version for version in ("2.11.2", "3.0.6", "3.3.1")}
# MWAA's constraint files are Airflow's constraints for Python 3.12 (3.3.1's pins need it: numpy 2.5 is 3.12+), so
# the matrix runs on 3.12 (the main .venv covers 3.11). MATRIX_PYTHON overrides the interpreter.
PYTHON_VERSION = "3.12"

# The dev extra's ruff/mypy floors are newer than some constraint files pin, and lint runs in the main venv only:
# the matrix installs the testing extra and the test tools (pytest & co. follow the pins where there are some).
TEST_TOOLS = ["pytest", "pytest-timeout", "hypothesis", "playwright"]
# Airflow 3.0/3.1 build the connection form from the hooks' wtforms widgets only when Flask-AppBuilder is
# importable (HookMetaService mocks it); the FAB provider brings it, as in a deployment with the FAB auth manager.
EXTRA_PACKAGES = {"mwaa-3.0.6": ["apache-airflow-providers-fab"]}
# Real components (scheduler, triggerer, ...) take minutes: they run in the main venv (latest Airflow 3) and on
# Airflow 2.11 (the other major line) only.
TEST_PATHS = ["tests/airflow", "tests/ui"]
PYTEST_ARGS = {name: ["-m", "not real_processes"] for name in ("mwaa-3.0.6", "mwaa-3.3.1")}


def uv() -> str:
    candidates = [Path(sys.executable).parent / "uv", ROOT / ".venv" / "bin" / "uv"]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("uv")
    if found:
        return found
    raise SystemExit("uv not found: run `make install` first (it installs uv into .venv)")


def python_interpreter() -> str:
    """A working Python 3.12: $MATRIX_PYTHON, python3.12 on PATH, or a pyenv-installed 3.12 (pyenv shims of
    versions that are not selected fail, so they are checked by running them)."""
    if os.environ.get("MATRIX_PYTHON"):
        return os.environ["MATRIX_PYTHON"]
    candidates = [shutil.which(f"python{PYTHON_VERSION}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob(f"versions/{PYTHON_VERSION}*/bin/python{PYTHON_VERSION}"))
    candidates += [f"/usr/bin/python{PYTHON_VERSION}", f"/usr/local/bin/python{PYTHON_VERSION}"]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "--version"], capture_output=True, check=False).returncode == 0:
            return candidate
    return PYTHON_VERSION  # let uv find (or fetch) one


def run(command: list[str], **kwargs: object) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT, **kwargs)  # type: ignore[call-overload]


def install(name: str, version: str) -> Path:
    venv = ROOT / f".venv-{name}"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    constraint = CONSTRAINTS / f"airflow-{version}.txt"
    inputs = [ROOT / "pyproject.toml", constraint, Path(__file__).resolve()]
    if stamp.exists() and python.exists() and all(stamp.stat().st_mtime > p.stat().st_mtime for p in inputs):
        print(f"[{name}] up to date ({stamp.relative_to(ROOT)})", flush=True)
        return python
    started = time.monotonic()
    if venv.exists():
        shutil.rmtree(venv)
    run([uv(), "venv", "--quiet", "-p", python_interpreter(), str(venv)])
    run([
        uv(), "pip", "install", "--quiet", "-p", str(python),
        f"apache-airflow=={version}", "apache-airflow-providers-google", "apache-airflow-providers-amazon",
        *EXTRA_PACKAGES.get(name, []), "-e", ".[testing]", *TEST_TOOLS,
        "-c", str(constraint),
    ])
    stamp.touch()
    print(f"[{name}] installed in {time.monotonic() - started:.0f}s", flush=True)
    return python


def versions(python: Path) -> str:
    code = (
        "import importlib.metadata as m;"
        "print(', '.join(f'{p} {m.version(p)}' for p in ('apache-airflow', 'apache-airflow-providers-google',"
        " 'apache-airflow-providers-amazon', 'google-auth', 'boto3', 'moto')))"
    )
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, pytest_args = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", action="append", choices=sorted(ENVIRONMENTS), help="default: all")
    parser.add_argument("--install-only", action="store_true")
    args = parser.parse_args(argv)
    names = args.env or list(ENVIRONMENTS)

    results: dict[str, str] = {}
    for name in names:
        python = install(name, ENVIRONMENTS[name])
        print(f"[{name}] {versions(python)}", flush=True)
        if args.install_only:
            continue
        started = time.monotonic()
        environment = {**os.environ, "GCP_WIF_MATRIX_ENV": name}
        environment.pop("VIRTUAL_ENV", None)
        code = subprocess.run(
            [str(python), "-m", "pytest", *TEST_PATHS, *PYTEST_ARGS.get(name, []), *pytest_args],
            cwd=ROOT, env=environment, check=False,
        ).returncode
        results[name] = f"{'passed' if code == 0 else f'FAILED (exit {code})'} in {time.monotonic() - started:.0f}s"
        print(f"[{name}] tests {results[name]}", flush=True)
    for name, result in results.items():
        print(f"matrix {name}: {result}")
    return 0 if all(result.startswith("passed") for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
