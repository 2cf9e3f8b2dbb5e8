"""`gcp-wif setup` builds its plan from typed arguments (SetupArgs), not from an argparse Namespace: the plan
built from SetupArgs written by hand prints exactly what the command line prints (the golden files)."""

from __future__ import annotations

import dataclasses

from airflow_provider_gcp_wif.cli import _parser
from airflow_provider_gcp_wif.cli.setup_args import SetupArgs, build_setup_plan
from airflow_provider_gcp_wif.cli.setup_writers import render_gcloud, render_terraform
from tests.cli.golden_cases import GOLDEN, environment


def golden_stdout(name: str) -> str:
    return (GOLDEN / f"{name}.txt").read_text().split("--- stdout\n", 1)[1].split("--- stderr\n", 1)[0]


def test_every_setup_flag_is_a_typed_field():
    setup = next(a for a in _parser()._subparsers._group_actions[0].choices.items() if a[0] == "setup")[1]
    dests = {action.dest for action in setup._actions if action.dest not in ("help", "handler")}
    assert {"buckets" if d == "bucket" else d for d in dests} == {f.name for f in dataclasses.fields(SetupArgs)}


def test_a_plan_from_setup_args_prints_what_the_command_line_prints():
    common = {"project_id": "wif-demo-project", "project_number": "734501234567", "pool_id": "aws-pool",
              "provider_id": "aws-provider", "aws_account_id": "123456789012"}
    cases = {
        "setup-gcloud-direct": SetupArgs(**common, aws_role_name="wif-role", direct_access=True,
                                         buckets=("gs://my-data-bucket", "other.bucket"), org_restrictions=True,
                                         organization_id="1234567", bucket_role="roles/storage.objectViewer"),
        "setup-terraform-jwt_path": SetupArgs(**common, aws_role_name="arn:aws:iam::123456789012:role/service-role/"
                                              "wif-role", federation="jwt", buckets=("my-data-bucket",),
                                              lifetime_over_hour=True, format="terraform"),
        "setup-gcloud-us_gov": SetupArgs(**common, aws_role_name="wif-role", aws_partition="aws-us-gov",
                                         service_account="named-sa"),
    }
    for name, args in cases.items():
        with environment(name):
            plan = build_setup_plan(args)
        printed = render_terraform(plan) if args.format == "terraform" else render_gcloud(plan)
        assert printed == golden_stdout(name), name
