"""``gcp-wif mwaa-bundle``: write the ``plugins.zip`` + ``requirements.txt`` pair with which Amazon MWAA installs
this provider from a wheel (MWAA's documented route for packages that are not on PyPI).

The provider's requirement is a PEP 508 direct reference to the bundled wheel's path with its sha256 in the URL
(``airflow-provider-gcp-wif @ file:///usr/local/airflow/plugins/<wheel>#sha256=<hex>``), never a name and version
that pip would look up: the package is not on PyPI, so anyone can publish that name there, and a wheel of the same
version with a build tag (or a higher version) on any index would beat the bundled one. pip installs a direct
reference from its URL alone, whatever the indexes offer, and refuses a file whose sha256 differs.

Why a URL hash and not ``--hash=sha256:...``: a ``--hash`` option puts pip in hash-checking mode for the *whole*
install, and MWAA's install is not ours alone. The images run ``safe-pip-install -r requirements.txt`` (plus
``-c $AIRFLOW_CONSTRAINTS_FILE`` when the file has no constraint line), and ``safe-pip-install`` adds the image's own
required packages (``apache-airflow[celery,statsd]==X``, the Amazon provider, ...) by name, without hashes, to the
same pip command (aws/amazon-mwaa-docker-images, ``mwaa/utils/user_requirements.py`` and the bootstrap scripts);
the provider's dependencies from PyPI have none either. Hash-checking mode would fail all of them. A hash in the
URL is checked for that one requirement and does not turn the mode on (pip's ``InstallRequirement.hashes``).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import quote, urlsplit

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]

from airflow_provider_gcp_wif.cli.common import (
    DISTRIBUTION,
    EXIT_OK,
    EXIT_USAGE,
    MWAA_IMAGE_PYTHON,
    MWAA_PLUGINS_DIR,
    PLUGIN_MODULE_NAME,
    UsageError,
    one_line,
)

#: What every MWAA image has installed besides apache-airflow (its requirements: the Amazon provider, Celery).
MWAA_IMAGE_PACKAGES = ("apache-airflow-providers-amazon",)
MWAA_PLATFORM = "manylinux2014_x86_64"
PLUGIN_MODULE_SOURCE = '''"""airflow-provider-gcp-wif, plugins-folder route (written by `gcp-wif mwaa-bundle`).

Airflow imports every module of the plugins folder; importing the provider's plugin activates gcp_wif connections
for every stock Google hook in the process. The package's own `airflow.plugins` entry point does the same; Airflow
registers the plugin once whichever route finds it first.
"""

from airflow_provider_gcp_wif.plugin import GcpWifPlugin

__all__ = ["GcpWifPlugin"]
'''


def _project_root() -> Path | None:
    """The source tree this package runs from (editable installs and checkouts), or ``None``."""
    import airflow_provider_gcp_wif

    root = Path(airflow_provider_gcp_wif.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and _project_name(pyproject.read_text()) == DISTRIBUTION:
        return root
    return None


def _project_name(pyproject: str) -> str | None:
    """``[project] name`` of a ``pyproject.toml``. Python 3.10 has no ``tomllib`` (and this package adds no TOML
    dependency for one command): there, the first ``name = "..."`` line, which is where this project's is."""
    if tomllib is None:
        found = re.search(r'^name\s*=\s*"([^"]*)"', pyproject, re.MULTILINE)
        return found.group(1) if found else None
    try:
        name = tomllib.loads(pyproject).get("project", {}).get("name")
    except tomllib.TOMLDecodeError:
        return None
    return name if isinstance(name, str) else None


def build_wheel(out_dir: Path) -> Path:
    """Build the provider's wheel from its source tree with ``uv build`` (or ``pip wheel --no-deps``)."""
    root = _project_root()
    if root is None:
        raise UsageError(f"{DISTRIBUTION} is not installed from a source tree here; pass --wheel PATH (e.g. the "
                         f"wheel downloaded with `pip download {DISTRIBUTION} --no-deps`).")
    uv = shutil.which("uv") or (str(Path(sys.executable).with_name("uv"))
                                if Path(sys.executable).with_name("uv").exists() else None)
    if uv:
        command = [uv, "build", "--wheel", "--out-dir", str(out_dir), str(root)]
    else:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out_dir), str(root)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    wheels = sorted(out_dir.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise UsageError(f"building the wheel failed ({' '.join(command[:3])} ...): "
                         f"{(result.stderr or result.stdout).strip()[-2000:]}; or pass --wheel PATH.")
    return wheels[-1]


def wheel_metadata(path: Path) -> tuple[str, str]:
    """(Name, Version) from a wheel's ``METADATA`` (its top-level ``*.dist-info/METADATA``), read by ``packaging``."""
    from packaging.metadata import parse_email

    try:
        with zipfile.ZipFile(path) as wheel:
            names = [n for n in wheel.namelist()
                     if n.count("/") == 1 and n.endswith("/METADATA") and n.split("/")[0].endswith(".dist-info")]
            if not names:
                raise UsageError(f"{path} has no .dist-info/METADATA: not a wheel.")
            metadata, _ = parse_email(wheel.read(names[0]).decode("utf-8"))
    except zipfile.BadZipFile as err:
        raise UsageError(f"{path} is not a wheel (zip): {err}") from err
    return str(metadata.get("name")), str(metadata.get("version"))


def _normalise(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


@dataclass(frozen=True)
class MwaaImage:
    """The MWAA image a --no-index bundle is built for."""

    airflow_version: str
    python_version: str
    constraints: Path


def mwaa_image(args: argparse.Namespace) -> MwaaImage:
    """The image named by --airflow-version: its Python (--python-version overrides) and its constraints file."""
    from packaging.version import InvalidVersion, Version

    try:
        airflow_version = str(Version(args.airflow_version))
    except InvalidVersion as err:
        raise UsageError(f"--airflow-version {args.airflow_version}: not a version (e.g. 3.0.6).") from err
    python_version = args.python_version or MWAA_IMAGE_PYTHON.get(airflow_version)
    if python_version is None:
        raise UsageError(f"--airflow-version {airflow_version}: not an MWAA image this tool knows "
                         f"({', '.join(MWAA_IMAGE_PYTHON)}); pass --python-version 3.X too.")
    if args.constraints:
        constraints = Path(args.constraints)
    else:
        root = _project_root()
        constraints = (root / "constraints" / "mwaa" / f"airflow-{airflow_version}.txt") if root else Path("-")
    if not constraints.is_file():
        raise UsageError(f"no constraints file for MWAA {airflow_version}: pass --constraints FILE (the image's "
                         f"etc/airflow_constraints.txt in aws/amazon-mwaa-docker-images, or Airflow's "
                         f"constraints-{airflow_version}/constraints-{python_version}.txt).")
    return MwaaImage(airflow_version, python_version, constraints)


def _uv() -> str:
    uv = shutil.which("uv") or (str(Path(sys.executable).with_name("uv"))
                                if Path(sys.executable).with_name("uv").exists() else None)
    if not uv:
        raise UsageError("--airflow-version resolves the image's dependency set with uv (`pip install uv`; pip "
                         "cannot resolve for another platform when a pin has no wheel, e.g. dill 0.3.1.1); or "
                         "pass --dependency-wheels DIR.")
    return uv


def _resolve(image: MwaaImage, requirements: list[str], work: Path, label: str) -> dict[str, str]:
    """{normalised name: version} that ``requirements`` resolve to on the image (its Python, manylinux x86_64,
    its constraints). Only metadata is read; sdist-only pins of the image (installed there already) are fine."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    source = work / f"{label}.in"
    source.write_text("\n".join(requirements) + "\n")
    command = [_uv(), "pip", "compile", "--quiet", "--no-config", "--no-header", "--no-annotate",
               "--python-platform", "x86_64-manylinux_2_17", "--python-version", image.python_version,
               "-c", str(image.constraints), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        raise UsageError(f"could not resolve {label} for MWAA {image.airflow_version} (Python "
                         f"{image.python_version}): {one_line(result.stderr or result.stdout, 1500)}")
    pins: dict[str, str] = {}
    for line in result.stdout.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        pins[canonicalize_name(requirement.name)] = (specifiers[0].version if specifiers else
                                                     str(requirement.url or ""))
    return pins


def download_dependency_wheels(image: MwaaImage, wheel: Path, into: Path) -> list[str]:
    """Download the wheels our wheel needs beyond what the image already has: resolve the image (apache-airflow
    at its version + MWAA_IMAGE_PACKAGES) and the image plus our wheel under the image's constraints; the
    difference is what pip on an offline MWAA would otherwise look for on an index."""
    into.mkdir(parents=True, exist_ok=True)
    base = [f"apache-airflow=={image.airflow_version}", *MWAA_IMAGE_PACKAGES]
    with tempfile.TemporaryDirectory(prefix="gcp-wif-resolve-") as work:
        in_image = _resolve(image, base, Path(work), "image")
        with_us = _resolve(image, [*base, f"{DISTRIBUTION} @ {wheel.resolve().as_uri()}"], Path(work),
                           "bundle")
    missing = sorted(f"{name}=={version}" for name, version in with_us.items()
                     if name != DISTRIBUTION and in_image.get(name) != version)
    if missing:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                   "-d", str(into), "--platform", MWAA_PLATFORM, "--python-version", image.python_version,
                   "--implementation", "cp", "--only-binary=:all:", *missing]
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        if result.returncode != 0:
            raise UsageError(f"pip download failed: {one_line(result.stderr or result.stdout, 1500)}")
    return missing


def bundled_wheel_requirement(wheel_name: str, wheel_bytes: bytes) -> str:
    """The requirement line installing exactly these bytes from the plugins folder: a direct reference to the wheel's
    path there, its sha256 in the URL (see the module docstring for why not ``--hash``)."""
    digest = hashlib.sha256(wheel_bytes).hexdigest()
    return f"{DISTRIBUTION} @ file://{MWAA_PLUGINS_DIR}/{quote(wheel_name)}#sha256={digest}"


def cmd_mwaa_bundle(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        written = write_mwaa_bundle(args)
    except UsageError as error:
        print(f"gcp-wif mwaa-bundle: {error}", file=err)
        return EXIT_USAGE
    plugins, requirements, contents = written
    print(f"wrote {plugins} ({', '.join(contents)})", file=out)
    print(f"wrote {requirements}:", file=out)
    for line in requirements.read_text().splitlines():
        if line and not line.startswith("#"):
            print(f"    {line}", file=out)
    print("next: upload both to the environment's S3 bucket and point the environment at their versions, e.g.\n"
          "    aws s3 cp plugins.zip s3://BUCKET/plugins.zip && aws s3 cp requirements.txt "
          "s3://BUCKET/requirements.txt\n"
          "    aws mwaa update-environment --name ENV --plugins-s3-path plugins.zip --plugins-s3-object-version V1 "
          "--requirements-s3-path requirements.txt --requirements-s3-object-version V2", file=out)
    return EXIT_OK


def write_mwaa_bundle(args: argparse.Namespace) -> tuple[Path, Path, list[str]]:
    output = Path(args.output)
    if args.no_index and not (args.dependency_wheels or args.airflow_version):
        raise UsageError("--no-index makes pip on MWAA resolve every requirement from plugins.zip alone: pass "
                         "--airflow-version X.Y.Z (the image's version: its dependency wheels are downloaded) or "
                         "--dependency-wheels DIR with wheels of all dependencies (see --help).")
    if args.no_index and args.constraints and urlsplit(args.constraints).scheme in ("http", "https"):
        raise UsageError(f"--constraints {args.constraints}: with --no-index the environment has no network to "
                         "fetch a constraints URL (pip would fail on every container start); pass the "
                         "constraints FILE instead, it is shipped in plugins.zip.")
    if args.constraints and urlsplit(args.constraints).scheme in ("http", "https") and any(
            character in "\"'" or character.isspace() or not character.isprintable() for character in args.constraints):
        raise UsageError(f"--constraints {args.constraints!r}: a URL with a quote, whitespace or a control character "
                         "would add options of its own to requirements.txt (pip reads it on every container start); "
                         "percent-encode those characters.")
    if args.constraints and urlsplit(args.constraints).scheme == "http":
        raise UsageError(f"--constraints {args.constraints}: pip would fetch it in clear text on every container "
                         "start, and whoever is on the path could loosen the pins; give an https:// URL or a FILE "
                         "(shipped in plugins.zip).")
    image = mwaa_image(args) if args.airflow_version else None
    if image and not args.constraints:
        args.constraints = str(image.constraints)
    with tempfile.TemporaryDirectory(prefix="gcp-wif-wheel-") as build_dir:
        wheel = Path(args.wheel) if args.wheel else build_wheel(Path(build_dir))
        if not wheel.is_file():
            raise UsageError(f"--wheel {wheel}: no such file.")
        name, version = wheel_metadata(wheel)
        if _normalise(name) != DISTRIBUTION:
            raise UsageError(f"{wheel} is {name} {version}, not {DISTRIBUTION}.")
        downloaded = Path(build_dir) / "dependencies"
        if image and args.no_index:
            download_dependency_wheels(image, wheel, downloaded)
        entries: dict[str, bytes] = {}
        if args.merge:
            with zipfile.ZipFile(args.merge) as existing:
                entries.update({n: existing.read(n) for n in existing.namelist() if not n.endswith("/")})
        entries[wheel.name] = wheel.read_bytes()
        entries[PLUGIN_MODULE_NAME] = PLUGIN_MODULE_SOURCE.encode()
        folders = [Path(f) for f in (args.dependency_wheels, downloaded) if f and Path(f).is_dir()]
        dependencies = False
        for dependency in sorted(w for folder in folders for w in folder.glob("*.whl")):
            if _normalise(wheel_metadata(dependency)[0]) != DISTRIBUTION:
                entries[dependency.name] = dependency.read_bytes()
                dependencies = True
        constraint_line = None
        if args.constraints:
            if urlsplit(args.constraints).scheme == "https":
                constraint_line = f'--constraint "{args.constraints}"'
            elif Path(args.constraints).is_file():
                entries["constraints.txt"] = Path(args.constraints).read_bytes()
                constraint_line = f'--constraint "{MWAA_PLUGINS_DIR}/constraints.txt"'
            else:
                raise UsageError(f"--constraints {args.constraints}: neither an http(s) URL nor a file.")
    output.mkdir(parents=True, exist_ok=True)
    plugins = output / "plugins.zip"
    with zipfile.ZipFile(plugins, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for entry, data in entries.items():
            bundle.writestr(entry, data)
    mode = ("--no-index: every requirement comes from plugins.zip" if args.no_index
            else "dependencies come from PyPI (under MWAA's constraints)")
    lines = [
        f"# Written by `gcp-wif mwaa-bundle` for {DISTRIBUTION} {version}; {mode}.",
        f"# The wheel is in plugins.zip, which MWAA unpacks to {MWAA_PLUGINS_DIR}.",
    ]
    if constraint_line:
        lines.append(constraint_line)
    if args.no_index or dependencies:
        # Bundled dependency wheels are where pip must look, with or without the index: else it would install a
        # private dependency's public namesake. Our own wheel stays a direct reference with its hash.
        lines.append(f"--find-links {MWAA_PLUGINS_DIR}")
    if args.no_index:
        lines.append("--no-index")
    lines.append(bundled_wheel_requirement(wheel.name, entries[wheel.name]))
    requirements = output / "requirements.txt"
    requirements.write_text("\n".join(lines) + "\n")
    return plugins, requirements, sorted(entries)
