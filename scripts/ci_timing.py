"""Where CI's time goes: each phase timed, each pytest selection's ten slowest tests, and a budget per phase.

    python scripts/ci_timing.py run NAME -- COMMAND...   # run COMMAND as phase NAME (its exit code is returned)
    python scripts/ci_timing.py report                   # the table of what was recorded
    python scripts/ci_timing.py report --check           # ... and exit 1 if a phase blew its budget (see BUDGETS)
    python scripts/ci_timing.py record NAME SECONDS [EXIT]  # a phase timed elsewhere (.ci/run's total)
    python scripts/ci_timing.py reset                    # forget what was recorded (.ci/run starts with it)

Phases are appended to ``artifacts/timing/phases.jsonl``; pytest selections leave JUnit XML files beside it
(``make test-suite`` and ``scripts/matrix.py`` pass ``--junitxml``), from which the report takes each selection's
ten slowest tests. Standard library only: .ci/run calls it before any venv exists.

The budgets are what each phase took in a clean-clone ``.ci/run`` on a 2-core machine of CI's kind (docs/ci.md has
the run); the check fails only when a phase takes more than ``MARGIN`` times its budget, a margin wider than the
spread between machines of one kind (about 1.6x seen): growth shows in the change that causes it, not when CI
passes its 90-minute limit. It is a check in .ci/run, never a timing assertion inside a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMING = Path(os.environ.get("GCP_WIF_TIMING_DIR", ROOT / "artifacts" / "timing"))
PHASES = TIMING / "phases.jsonl"
MARGIN = 2.0

#: Seconds per phase (a prefix matches: "matrix mwaa-2.9.2" takes the "matrix mwaa-2.9.2" entry, else "matrix").
BUDGETS: dict[str, float] = {
    "apt packages": 300,
    "install": 60,
    "lint": 60,
    "make test": 1700,
    "test-suite": 1200,
    "test-matrix": 1700,
    "matrix install": 60,
    "matrix mwaa-2.11.2": 1250,
    "matrix": 850,
    "make mwaa": 300,
    "total": 2100,
}


def budget(name: str) -> float | None:
    best = None
    for key in BUDGETS:
        if (name == key or name.startswith(key + " ")) and (best is None or len(key) > len(best)):
            best = key
    return BUDGETS[best] if best else None


def record(name: str, seconds: float, code: int) -> None:
    TIMING.mkdir(parents=True, exist_ok=True)
    with open(PHASES, "a", encoding="utf-8") as phases:
        phases.write(json.dumps({"phase": name, "seconds": round(seconds, 1), "exit": code}) + "\n")


def run(name: str, command: list[str]) -> int:
    started = time.monotonic()
    code = subprocess.call(command)
    record(name, time.monotonic() - started, code)
    return code


def phases() -> list[dict]:
    if not PHASES.exists():
        return []
    return [json.loads(line) for line in PHASES.read_text().splitlines() if line.strip()]


def slowest(junit: Path, count: int = 10) -> tuple[int, float, list[tuple[float, str]]]:
    """(tests, seconds, the ``count`` slowest (seconds, test id)) of a JUnit XML file."""
    cases = []
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - pytest wrote it, in this run
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        cases.append((float(case.get("time") or 0), name))
    cases.sort(reverse=True)
    return len(cases), sum(seconds for seconds, _ in cases), cases[:count]


def report(check: bool) -> int:
    rows = phases()
    print("\n== timing: phases (seconds; budget; over = more than "
          f"{MARGIN}x the budget) ==")
    over = []
    for row in rows:
        limit = budget(row["phase"])
        flag = ""
        if limit is not None and row["seconds"] > MARGIN * limit:
            flag = "  OVER BUDGET"
            over.append(row["phase"])
        status = "" if row["exit"] == 0 else f"  (exit {row['exit']})"
        print(f"{row['phase']:<32} {row['seconds']:>8.0f} {limit or '-':>8}{status}{flag}")
    for junit in sorted(TIMING.glob("junit-*.xml")):
        try:
            count, seconds, top = slowest(junit)
        except ET.ParseError:
            print(f"\n-- {junit.name}: unreadable")
            continue
        print(f"\n-- {junit.stem.removeprefix('junit-')}: {count} tests, {seconds:.0f} s in tests; the ten slowest:")
        for test_seconds, name in top:
            print(f"   {test_seconds:8.1f}  {name}")
    if check and over:
        print(f"\nci: over budget (more than {MARGIN}x): {', '.join(over)}. Find what grew (the slowest tests above) "
              "before raising a budget in scripts/ci_timing.py.", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("name")
    report_parser = sub.add_parser("report")
    report_parser.add_argument("--check", action="store_true")
    sub.add_parser("reset")
    record_parser = sub.add_parser("record")
    record_parser.add_argument("name")
    record_parser.add_argument("seconds", type=float)
    record_parser.add_argument("exit", type=int, nargs="?", default=0)
    args = parser.parse_args(argv)
    if args.action == "run":
        if not command:
            parser.error("run NAME -- COMMAND...")
        return run(args.name, command)
    if args.action == "record":
        record(args.name, args.seconds, args.exit)
        return 0
    if args.action == "reset":
        for path in [PHASES, *TIMING.glob("junit-*.xml")]:
            path.unlink(missing_ok=True)
        return 0
    return report(args.check)


if __name__ == "__main__":
    sys.exit(main())
