"""Compatibility matrix: the Airflow tests under each Amazon MWAA image's constraints, on that image's Python.

For each environment ``mwaa-<version>`` (``constraints/mwaa/airflow-<version>.txt``) this builds
``.venv-mwaa-<version>`` inside the repository with ``uv`` on the image's Python (3.11 for 2.9.2 and 2.10.x, 3.12
for the rest, as MWAA runs them), installs ``apache-airflow==<version>``, the Google and Amazon providers, the
environment's extra packages and this project (editable, with its ``testing`` extra and the test tools) under
that constraint file, then runs its test selection:

* ``full``  — ``tests/airflow`` and ``tests/ui`` but the ``soak`` tests: the oldest and newest 2.x (2.9.2,
  2.11.2) and 3.0.6; the newest 3.x gets the whole suite as the latest release in the main ``.venv``, and its MWAA
  image (3.3.1) the smoke selection here plus ``make mwaa``;
* ``smoke`` — the tests marked ``smoke`` there (plugin load in Airflow's plugin manager, provider metadata and the
  connection form as this Airflow builds it, the example DAG in real scheduler + triggerer processes): 3.3.1, the
  newest image;
* ``inprocess`` — the smoke tests but the real-process stack (``-m "smoke and not real_processes"``): the images
  between those boundaries (2.10.1, 2.10.3, 2.11.0, 3.2.1). What differs per image — its Google provider's
  ``GoogleBaseHook`` contract and the guard, its botocore (the jwt route), its provider metadata and form — is
  checked in process on each; the scheduler/triggerer wiring the real-process stack proves is Airflow's, and each
  Airflow line's oldest and newest image (2.9.2, 2.11.2; 3.0.6, 3.3.1) runs it (as did every image until the CI
  time issue, #24: four stacks of ~3-4 minutes of CPU each that proved nothing the boundaries do not).

The latest releases are the main ``.venv`` (``make test`` runs the whole suite there first). An environment is
reinstalled only when what it installs changes (``pyproject.toml``, its constraint file, its package list: the
stamp file holds them). The next environment installs while the current one's tests run (``--install-jobs``);
``--jobs 2`` runs two environments' tests at once (their real-process tests spend much of their time waiting).

    python scripts/matrix.py                        # every environment
    python scripts/matrix.py --env mwaa-2.9.2       # one (repeatable)
    python scripts/matrix.py --install-only
    python scripts/matrix.py --smoke                # the smoke selection everywhere
    python scripts/matrix.py -- -k metadata -x      # after --: extra pytest arguments
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import ci_timing  # scripts/ (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints" / "mwaa"

# The dev extra's ruff/mypy floors are newer than some constraint files pin, and lint runs in the main venv only:
# the matrix installs the testing extra and the test tools (pytest & co. follow the pins where there are some).
TEST_TOOLS = ["pytest", "pytest-timeout", "hypothesis", "playwright"]
TEST_PATHS = ["tests/airflow", "tests/ui"]
# "full" leaves out the soak tests (minutes of waiting on rotations and expiries that no Airflow version changes):
# they run in the main venv.
SELECTIONS = {"full": ["-m", "not soak"], "smoke": ["-m", "smoke"], "inprocess": ["-m", "smoke and not real_processes"]}


@dataclass(frozen=True)
class Environment:
    version: str
    #: The image's Python (MWAA's constraint file for the image is Airflow's constraint file for that Python).
    python: str
    selection: str
    extra_packages: tuple[str, ...] = ()

    @property
    def constraint(self) -> Path:
        return CONSTRAINTS / f"airflow-{self.version}.txt"


# Airflow 3.0/3.1 build the connection form from the hooks' wtforms widgets only when Flask-AppBuilder is importable
# (HookMetaService mocks it otherwise); the FAB provider brings it, as in a deployment with the FAB auth manager.
# Airflow 2.x depends on the FAB provider itself.
_FAB = ("apache-airflow-providers-fab",)
ENVIRONMENTS: dict[str, Environment] = {
    f"mwaa-{env.version}": env
    for env in (
        Environment("2.9.2", "3.11", "full"),
        Environment("2.10.1", "3.11", "inprocess"),
        Environment("2.10.3", "3.11", "inprocess"),
        Environment("2.11.0", "3.12", "inprocess"),
        Environment("2.11.2", "3.12", "full"),
        Environment("3.0.6", "3.12", "full", _FAB),
        Environment("3.2.1", "3.12", "inprocess"),
        # The newest 3.x gets the full suite as the latest release in the main venv (3.3.2 when written); its MWAA
        # image gets the smoke selection here and the whole MWAA-faithful stack in `make mwaa` (CI runs it).
        Environment("3.3.1", "3.12", "smoke"),
    )
}


def uv() -> str:
    candidates = [Path(sys.executable).parent / "uv", ROOT / ".venv" / "bin" / "uv"]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("uv")
    if found:
        return found
    raise SystemExit("uv not found: run `make install` first (it installs uv into .venv)")


def python_interpreter(version: str) -> str:
    """A working Python ``version``: $MATRIX_PYTHON_<3_11>, python<version> on PATH, or a pyenv-installed one (pyenv
    shims of versions that are not selected fail, so candidates are checked by running them). uv is given a
    concrete path: it cannot download an interpreter here."""
    override = os.environ.get(f"MATRIX_PYTHON_{version.replace('.', '_')}")
    if override:
        return override
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob(f"versions/{version}*/bin/python{version}"))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "--version"], capture_output=True, check=False).returncode == 0:
            return candidate
    raise SystemExit(f"no Python {version} found: install it (pyenv install {version}) or set "
                     f"MATRIX_PYTHON_{version.replace('.', '_')}")


def requirements(env: Environment) -> list[str]:
    return [f"apache-airflow=={env.version}", "apache-airflow-providers-google", "apache-airflow-providers-amazon",
            *env.extra_packages, "-e", ".[testing]", *TEST_TOOLS]


def install_spec(env: Environment) -> str:
    """What an environment's install depends on; the stamp file holds it."""
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", env.constraint):
        digest.update(path.read_bytes())
    return json.dumps({"python": env.python, "requirements": requirements(env), "inputs": digest.hexdigest()})


def run_logged(name: str, command: list[str], log_path: Path | None) -> None:
    """Run ``command``; its output goes to ``log_path`` (or is captured), and is shown if it fails."""
    print(f"[{name}] + {' '.join(command)}", flush=True)
    result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            check=False)
    if log_path is not None:
        log_path.write_text(f"+ {' '.join(command)}\n{result.stdout}")
    if result.returncode != 0:
        raise RuntimeError(f"[{name}] install failed (exit {result.returncode}):\n{result.stdout[-10000:]}")


def install(name: str, env: Environment) -> tuple[Path, float | None]:
    """Build the environment unless it is up to date; returns its interpreter and the install's seconds (None when
    it was up to date). uv's output goes to ``.venv-<name>/install.log`` (and is printed on failure)."""
    venv = ROOT / f".venv-{name}"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    spec = install_spec(env)
    if stamp.exists() and python.exists() and stamp.read_text() == spec:
        print(f"[{name}] up to date ({stamp.relative_to(ROOT)})", flush=True)
        return python, None
    started = time.monotonic()
    if venv.exists():
        shutil.rmtree(venv)
    run_logged(name, [uv(), "venv", "--quiet", "-p", python_interpreter(env.python), str(venv)], None)
    run_logged(name, [uv(), "pip", "install", "-p", str(python), *requirements(env), "-c", str(env.constraint)],
               venv / "install.log")
    stamp.write_text(spec)
    seconds = time.monotonic() - started
    ci_timing.record(f"matrix install {name}", seconds, 0)
    print(f"[{name}] installed in {seconds:.0f}s", flush=True)
    return python, seconds


def versions(python: Path) -> str:
    code = (
        "import importlib.metadata as m, sys;"
        "print(f'Python {sys.version.split()[0]}, ' + ', '.join(f'{p} {m.version(p)}' for p in ('apache-airflow',"
        " 'apache-airflow-providers-google', 'apache-airflow-providers-amazon', 'google-auth', 'boto3', 'moto')))"
    )
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_environment(name: str, installed: Future[tuple[Path, float | None]], result: dict[str, object],
                     pytest_args: list[str], install_only: bool, quiet: bool) -> None:
    """Wait for the environment's install, then run its test selection; ``result`` gets seconds and outcome."""
    try:
        python, result["install_s"] = installed.result()
    except Exception as error:  # noqa: BLE001 - reported per environment; the others still run
        print(error, flush=True)
        result["outcome"] = "INSTALL FAILED"
        return
    print(f"[{name}] {versions(python)}", flush=True)
    if install_only:
        result["outcome"] = "installed"
        return
    environment = {**os.environ, "GCP_WIF_MATRIX_ENV": name}
    environment.pop("VIRTUAL_ENV", None)
    command = [str(python), "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={ci_timing.TIMING}/junit-{name}.xml",
               *TEST_PATHS, *SELECTIONS[str(result["selection"])], *pytest_args]
    print(f"[{name}] + {' '.join(command)}", flush=True)
    log_path = python.parent.parent / "pytest.log"
    started = time.monotonic()
    with open(log_path, "w") if quiet else contextlib.nullcontext() as log:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log,
                                   stderr=subprocess.STDOUT if quiet else None)
        # wait4: this run's own CPU seconds (with its waited-for children), whatever else runs beside it.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = code = os.waitstatus_to_exitcode(status)
    result["tests_s"] = time.monotonic() - started
    result["tests_cpu_s"] = usage.ru_utime + usage.ru_stime
    result["outcome"] = "passed" if code == 0 else f"FAILED (exit {code})"
    ci_timing.record(f"matrix {name} ({result['selection']})", float(result["tests_s"]), code)
    if quiet:
        print(f"[{name}] ----- {log_path.relative_to(ROOT)}\n{log_path.read_text(errors='replace')[-20000:]}",
              flush=True)
    print(f"[{name}] tests {result['outcome']} in {result['tests_s']:.0f}s "
          f"({result['tests_cpu_s']:.0f} CPU s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, pytest_args = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", action="append", choices=list(ENVIRONMENTS), help="default: all")
    parser.add_argument("--install-only", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="run the smoke selection in every environment")
    parser.add_argument("--install-jobs", type=int, default=1,
                        help="environments installed at once, alongside the tests of installed ones (default 1)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="environments whose tests run at once (default 1; output then per environment)")
    args = parser.parse_args(argv)
    names = args.env or list(ENVIRONMENTS)

    results: dict[str, dict[str, object]] = {
        name: {"selection": "smoke" if args.smoke else ENVIRONMENTS[name].selection} for name in names
    }
    # With --jobs > 1 each run's output goes to .venv-<name>/pytest.log and is printed when it ends.
    quiet = args.jobs > 1
    with ThreadPoolExecutor(max_workers=max(1, args.install_jobs)) as installer, \
            ThreadPoolExecutor(max_workers=max(1, args.jobs)) as runner:
        # Longest first (full, then smoke, then in-process selections), so that parallel runs end close together.
        order = sorted(names, key=lambda name: list(SELECTIONS).index(str(results[name]["selection"])))
        installs = {name: installer.submit(install, name, ENVIRONMENTS[name]) for name in order}
        runs = [runner.submit(test_environment, name, installs[name], results[name], pytest_args,
                              args.install_only, quiet) for name in order]
        for run in runs:
            run.result()

    def seconds(value: object) -> str:
        return "up to date" if value is None else f"{value:.0f}s" if isinstance(value, float) else "-"

    print(f"{'environment':<14} {'selection':<9} {'install':>10} {'tests':>7} {'tests cpu':>9}  outcome")
    for name, result in results.items():
        print(f"{name:<14} {result['selection']!s:<9} {seconds(result.get('install_s', '')):>10} "
              f"{seconds(result.get('tests_s', '')):>7} {seconds(result.get('tests_cpu_s', '')):>9}  "
              f"{result.get('outcome')}")
    ok = ("passed", "installed")
    return 0 if all(result.get("outcome") in ok for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
