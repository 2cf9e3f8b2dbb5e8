"""``python -m airflow_provider_gcp_wif.testing [--config FILE] [--host 127.0.0.1] [--port 0]
[--aws-credential-ttl S] [--allow-non-loopback]``

Starts emulated AWS and Google Cloud, prints one JSON line (endpoints, fixture identities, ``env``) on stdout
once ready, then serves until SIGINT or SIGTERM and exits 0. A non-loopback ``--host`` is refused (exit 2) unless
``--allow-non-loopback`` is given: the emulator mints tokens for anyone who can reach it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from .bind import ALLOW_FLAG, NonLoopbackHostError, require_loopback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_gcp_wif.testing",
                                     description="Emulated AWS + Google Cloud for Workload Identity Federation.")
    parser.add_argument("--config", help="JSON file deep-merged over the default fixture")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument(ALLOW_FLAG, action="store_true",
                        help="allow a non-loopback --host (only on a network private to you, e.g. a container's)")
    parser.add_argument("--port", type=int, default=0, help="port of the Google endpoints (default: a free one)")
    parser.add_argument("--aws-region", default="us-east-1")
    parser.add_argument("--aws-credential-ttl", type=float, default=300.0,
                        help="lifetime in seconds of the temporary credentials the AWS identity fakes serve")
    args = parser.parse_args(argv)
    try:
        require_loopback(args.host, args.allow_non_loopback)
    except NonLoopbackHostError as err:
        parser.error(str(err))

    from .emulator import CloudEmulator

    stop = threading.Event()

    def request_stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    emulator = CloudEmulator(args.config, host=args.host, port=args.port, aws_region=args.aws_region,
                             aws_credential_ttl=args.aws_credential_ttl,
                             allow_non_loopback=args.allow_non_loopback).start()
    try:
        sys.stdout.write(json.dumps(emulator.info) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
