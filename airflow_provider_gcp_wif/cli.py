"""``gcp-wif``: the command line.

``gcp-wif token`` prints a Google access token and its expiry, configured by the seed package's environment
variables (``GCP_PROJECT_NUMBER``, ``GCP_WORKLOAD_ID``, ``GCP_WORKLOAD_PROVIDER``, ``GCP_SERVICE_ACCOUNT_EMAIL``,
``AWS_ACCOUNT_ID``, ``AWS_ROLE_NAME``, ``AWS_REGION``, ``TOKEN_LIFETIME``, ``TOKEN_SCOPES``, ``GCP_WIF_STS_ENDPOINT``,
``GCP_WIF_IAM_ENDPOINT``). Failures print the step, Google's reason and the fix, and exit 1 (2 for bad settings).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gcp-wif", description="Keyless Google Cloud access from an AWS identity.")
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print a Google access token and its expiry (seed parity)")
    token.add_argument("--json", action="store_true", help='print {"access_token": ..., "expire_time": ...}')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError
    from airflow_provider_gcp_wif.token_service import TokenService

    try:
        token, expire_time = TokenService.from_env().get_token()
    except WifConfigError as err:
        print(f"gcp-wif: {err}", file=sys.stderr)
        return 2
    except WifExchangeError as err:
        print(f"gcp-wif: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"access_token": token, "expire_time": expire_time}))
    else:
        print(token)
        print(expire_time)
    return 0


if __name__ == "__main__":
    sys.exit(main())
