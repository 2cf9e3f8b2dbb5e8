"""The cases of the golden-output oracle (test_golden_output.py): `gcp-wif setup` for a spread of flag and format
combinations and `--help` of every command, and how each is rendered. The files under golden/ were written by the
code before cli.py became the cli/ package (issue #14). After an intended change of the output, regenerate them
with `python -m tests.cli.golden_cases` and review the diff."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).with_name("golden")
BASE = ["setup", "--project-id", "wif-demo-project", "--project-number", "734501234567", "--pool-id", "aws-pool",
        "--provider-id", "aws-provider", "--aws-account-id", "123456789012", "--aws-role-name", "wif-role"]
ISSUER = "https://0f5a1d2e-abcd-4e3f-9a8b-1234567890ab.tokens.sts.global.api.aws"
PATH_ARN = "arn:aws:iam::123456789012:role/service-role/wif-role"
LONG_ROLE = "a-rather-long-execution-role-name-for-the-airflow-environment-x"
VARIANTS: dict[str, list[str]] = {
    "plain": [],
    "org": ["--lifetime-over-hour", "--org-restrictions"],
    "org_id": ["--bucket", "my-data-bucket", "--lifetime-over-hour", "--organization-id", "1234567"],
    "direct": ["--direct-access", "--bucket", "gs://my-data-bucket", "--bucket", "other.bucket", "--org-restrictions",
               "--organization-id", "1234567", "--bucket-role", "roles/storage.objectViewer"],
    "us_gov": ["--aws-partition", "aws-us-gov", "--service-account", "named-sa"],
    "cn_arn": ["--aws-role-name", "arn:aws-cn:iam::123456789012:role/path/to/wif-role"],
    "long_role": ["--aws-role-name", LONG_ROLE, "--universe-domain", "example.test"],
    "jwt": ["--federation", "jwt"],
    "jwt_path": ["--federation", "jwt", "--aws-role-name", PATH_ARN, "--bucket", "my-data-bucket",
                 "--lifetime-over-hour"],
    "jwt_issuer_org": ["--federation", "jwt", "--issuer-uri", ISSUER + "/", "--org-restrictions"],
    "jwt_direct_org": ["--federation", "jwt", "--direct-access", "--issuer-uri", ISSUER, "--org-restrictions",
                       "--organization-id", "1234567", "--bucket", "my-data-bucket"],
    "jwt_long_path": ["--federation", "jwt", "--aws-role-name",
                      f"arn:aws:iam::123456789012:role/{'deep/' * 12}{LONG_ROLE}"],
    "jwt_gov": ["--federation", "jwt", "--aws-partition", "aws-us-gov", "--universe-domain", "example.test"],
    # Refused inputs: status 2 and the one line on stderr.
    "bad_account": ["--aws-account-id", "12345"],
    "bad_issuer": ["--issuer-uri", ISSUER],
    "bad_jwt_org": ["--federation", "jwt", "--org-restrictions"],
    "bad_direct_sa": ["--direct-access", "--service-account", "x"],
    "bad_bucket": ["--bucket", "Not_A_Bucket!"],
}
CASES = {f"setup-{fmt}-{name}": [*BASE, *flags, "--format", fmt]
         for name, flags in VARIANTS.items() for fmt in ("gcloud", "terraform")}
CASES["setup-env-defaults"] = ["setup", "--project-id", "wif-demo-project"]
HELP = {f"help-{name or 'top'}": [*([name] if name else []), "--help"]
        for name in ("", "token", "doctor", "setup", "mwaa-bundle")}
#: setup-env-defaults: the seed's variables stand in for the flags left out.
ENV = {"GCP_PROJECT_NUMBER": "734501234567", "GCP_WORKLOAD_ID": "env-pool", "GCP_WORKLOAD_PROVIDER": "env-provider",
       "GCP_SERVICE_ACCOUNT_EMAIL": "env-sa@wif-demo-project.iam.gserviceaccount.com",
       "AWS_ACCOUNT_ID": "210987654321", "AWS_ROLE_NAME": "env-role"}
SEED_NAMES = (*ENV, "AWS_REGION", "TOKEN_LIFETIME", "TOKEN_SCOPES", "GCP_WIF_STS_ENDPOINT", "GCP_WIF_IAM_ENDPOINT")


def render(name: str) -> str:
    """What the command prints for case ``name``: status, stdout and stderr in one text."""
    from airflow_provider_gcp_wif import cli

    out, err = io.StringIO(), io.StringIO()
    if name in HELP:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
            cli.main(HELP[name])
        code = stop.value.code
    else:
        code = cli.main(CASES[name], out=out, err=err)
    return f"status: {code}\n--- stdout\n{out.getvalue()}--- stderr\n{err.getvalue()}"


@contextlib.contextmanager
def environment(name: str):
    saved = {key: os.environ.get(key) for key in (*SEED_NAMES, "COLUMNS")}
    for key in SEED_NAMES:
        os.environ.pop(key, None)
    os.environ["COLUMNS"] = "120"  # argparse wraps help to the terminal's width
    if name == "setup-env-defaults":
        os.environ.update(ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


if __name__ == "__main__":
    GOLDEN.mkdir(exist_ok=True)
    for case in sorted([*CASES, *HELP]):
        with environment(case):
            (GOLDEN / f"{case}.txt").write_text(render(case))
    print(f"wrote {len(CASES) + len(HELP)} files to {GOLDEN}", file=sys.stderr)
