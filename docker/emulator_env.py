"""Print ``export NAME=value`` lines for the ``env`` of the emulator's start-up JSON line (a file), for ``eval``.

    eval "$(python emulator_env.py /run/gcp-wif/emulator.json)"

The values are the emulated clouds' Airflow connections and settings (AWS keys are generated per start and only
valid against the emulated AWS); each is shell-quoted.
"""

from __future__ import annotations

import json
import re
import shlex
import sys


def exports(info: dict) -> list[str]:
    lines = []
    for name, value in sorted(info["env"].items()):
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            raise ValueError(f"not an environment variable name: {name!r}")
        lines.append(f"export {name}={shlex.quote(str(value))}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: emulator_env.py EMULATOR_JSON_FILE", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as handle:
        info = json.loads(handle.readline())
    print("\n".join(exports(info)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
