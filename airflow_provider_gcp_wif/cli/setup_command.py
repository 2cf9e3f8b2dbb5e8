"""``gcp-wif setup``: print the ``gcloud`` commands (or Terraform) that create the pool, the AWS provider restricted
to one role, the service account and its ``roles/iam.workloadIdentityUser`` binding, and optional org policies;
with ``--federation jwt`` the AWS side too and an OIDC provider."""

from __future__ import annotations

import argparse
from typing import TextIO

from airflow_provider_gcp_wif.cli.common import EXIT_OK, EXIT_USAGE, one_line
from airflow_provider_gcp_wif.cli.setup_args import SetupArgs, build_setup_plan
from airflow_provider_gcp_wif.cli.setup_writers import render_gcloud, render_terraform


def cmd_setup(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from airflow_provider_gcp_wif.errors import WifConfigError

    setup = SetupArgs.from_namespace(args)
    try:
        plan = build_setup_plan(setup)
    except WifConfigError as error:
        print(f"gcp-wif setup: {one_line(error)}", file=err)
        return EXIT_USAGE
    out.write(render_terraform(plan) if setup.format == "terraform" else render_gcloud(plan))
    return EXIT_OK
