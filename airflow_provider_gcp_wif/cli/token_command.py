"""``gcp-wif token``: print a Google access token and its expiry (the seed package's use case)."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from airflow_provider_gcp_wif.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    _request,
    load_source,
    one_line,
)


def cmd_token(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from airflow_provider_gcp_wif.credentials import get_credentials
    from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError
    from airflow_provider_gcp_wif.token_service import rfc3339

    try:
        source = load_source(args.conn_id)
        credentials = get_credentials(source.settings, source.supplier)
        credentials.refresh(_request())
    except (WifConfigError, UsageError) as error:
        print(f"gcp-wif: {one_line(error)}", file=err)
        return EXIT_USAGE
    except WifExchangeError as error:
        print(f"gcp-wif: {one_line(error)}", file=err)
        return EXIT_FAILED
    token, expire_time = credentials.token, rfc3339(credentials.expiry)
    if args.json:
        print(json.dumps({"access_token": token, "expire_time": expire_time}), file=out)
    else:
        print(token, file=out)
        print(expire_time, file=out)
    return EXIT_OK
