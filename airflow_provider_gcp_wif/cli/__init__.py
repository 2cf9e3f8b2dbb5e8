"""``gcp-wif``: the command line.

Subcommands:

* ``token`` prints a Google access token and its expiry (the seed package's use case);
* ``doctor`` runs the exchange step by step (settings, AWS identity, subject length, web identity token (federation
  jwt), STS exchange, impersonation,
  one Google API call) and prints a checklist with Google's reason and the fix for each failure;
* ``setup`` prints the ``gcloud`` commands (or Terraform) that create the pool, the AWS provider restricted to one
  role, the service account and its ``roles/iam.workloadIdentityUser`` binding, and optional org policies;
* ``mwaa-bundle`` writes the ``plugins.zip`` + ``requirements.txt`` pair with which Amazon MWAA installs this
  provider from a wheel (MWAA's documented route for packages that are not on PyPI).

``token`` and ``doctor`` are configured either by an Airflow connection (``--conn-id``; Airflow is imported only
then, and the connection is read the way tasks read it: environment variables, secrets backends, the metadata
database) or by the seed package's environment variables (``GCP_PROJECT_NUMBER``, ``GCP_WORKLOAD_ID``,
``GCP_WORKLOAD_PROVIDER``, ``GCP_SERVICE_ACCOUNT_EMAIL``, ``AWS_ACCOUNT_ID``, ``AWS_ROLE_NAME``, ``AWS_REGION``,
``TOKEN_LIFETIME``, ``TOKEN_SCOPES``, ``GCP_WIF_STS_ENDPOINT``, ``GCP_WIF_IAM_ENDPOINT``).

Exit status: 0 success; 1 a step failed (``doctor``: any check failed); 2 bad settings or usage. Nothing printed
ever contains a token, an AWS secret or a subject token.

Laid out like Airflow's own CLI: this module holds the parser and loads a command's module
(``<command>_command.py``) only when that command runs, so ``gcp-wif --help`` imports no command and each command
imports only its own; ``common.py`` is what they share. Import a command's names from its module
(``from airflow_provider_gcp_wif.cli.doctor_command import doctor``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from airflow_provider_gcp_wif.cli.common import (
    DISTRIBUTION,
    EXIT_FAILED,
    EXIT_USAGE,
    FEDERATIONS,
    MWAA_IMAGE_PYTHON,
    MWAA_PLUGINS_DIR,
    PLUGIN_MODULE_NAME,
    UsageError,
    one_line,
)
from airflow_provider_gcp_wif.resource_names import AWS_PARTITIONS

__all__ = ["MWAA_BUNDLE_HELP", "main"]


Handler = Callable[[argparse.Namespace, TextIO, TextIO], int]


def _lazy(module: str, function: str) -> Handler:
    """The command's handler, imported when the command runs (Airflow's ``lazy_load_command``)."""

    def command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        handler: Handler = getattr(importlib.import_module(f"{__name__}.{module}"), function)
        return handler(args, out, err)

    command.__name__ = command.__qualname__ = function
    return command


# ---------------------------------------------------------------------------------------------------------------
# the parser
# ---------------------------------------------------------------------------------------------------------------

MWAA_BUNDLE_HELP = f"""\
Write plugins.zip and requirements.txt for Amazon MWAA (its documented route for a package that is not on PyPI:
wheels in plugins.zip, which MWAA unpacks to {MWAA_PLUGINS_DIR}, and requirements.txt pointing pip there).

plugins.zip holds the provider's wheel and {PLUGIN_MODULE_NAME} (the plugins-folder route to the plugin; the
wheel's own airflow.plugins entry point does the same, Airflow registers it once). requirements.txt references
that wheel by path and sha256:
    {DISTRIBUTION} @ file://{MWAA_PLUGINS_DIR}/<wheel>#sha256=<hex>
never by name and version: the name is not on PyPI, anyone can publish it, and pip would prefer such a wheel (a
build tag, a higher version) on any index.

Dependencies: by default pip fetches the provider's dependencies (apache-airflow-providers-google/-amazon,
google-auth) from PyPI under MWAA's constraints, which needs an environment with PyPI access. For a private
network without PyPI (private web server mode), MWAA documents `--no-index`: pip then resolves EVERY requirement
from plugins.zip alone. `--no-index --airflow-version X.Y.Z` does that for the named MWAA image: it resolves this
provider against the image (apache-airflow X.Y.Z + the Amazon provider, which every MWAA image has) under the
image's constraints for the image's Python ({', '.join(f'{v}: {p}' for v, p in MWAA_IMAGE_PYTHON.items())}),
manylinux2014_x86_64, binary wheels only, and downloads the wheels of what the image lacks (the Google provider
and its client libraries; typically 100+ wheels) with this Python's pip. The constraints file is
--constraints FILE, else constraints/mwaa/airflow-X.Y.Z.txt of this source tree (copies of the images'
etc/airflow_constraints.txt from aws/amazon-mwaa-docker-images); it is shipped in plugins.zip and referenced from
there, since an offline environment cannot reach a constraints URL (refused with --no-index). Or pass
--dependency-wheels DIR with wheels you built yourself.
"""


_SOURCE_HELP = ("read the settings from this Airflow connection (type gcp_wif; environment variables, secrets "
                "backend or metadata database); without it, the seed's environment variables GCP_PROJECT_NUMBER, "
                "GCP_WORKLOAD_ID, GCP_WORKLOAD_PROVIDER, GCP_SERVICE_ACCOUNT_EMAIL, AWS_ACCOUNT_ID, AWS_ROLE_NAME, "
                "AWS_REGION, TOKEN_LIFETIME, TOKEN_SCOPES, GCP_WIF_STS_ENDPOINT, GCP_WIF_IAM_ENDPOINT")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gcp-wif", description="Keyless Google Cloud access from an AWS identity.")
    commands = parser.add_subparsers(dest="command", required=True)

    token = commands.add_parser("token", help="print a Google access token and its expiry (seed parity)",
                                description="Print a Google access token and its RFC 3339 expiry.")
    token.add_argument("--conn-id", help=_SOURCE_HELP)
    token.add_argument("--json", action="store_true", help='print {"access_token": ..., "expire_time": ...}')
    token.set_defaults(handler=_lazy("token_command", "cmd_token"))

    doctor = commands.add_parser(
        "doctor", help="check each step of the exchange and print the fix for what fails",
        description="Check the settings, the AWS identity, the subject length, the STS exchange, the "
        "impersonation and one Google API call (Cloud Resource Manager projects.get), one visible step at a time. "
        "Exit status 0 only when no check failed (warnings do not fail). Prints no token or secret.",
    )
    doctor.add_argument("--conn-id", help=_SOURCE_HELP)
    doctor.add_argument("--json", action="store_true", help="print the checklist as JSON")
    doctor.add_argument("--no-api-call", action="store_true", help="skip the sample Google API call")
    doctor.add_argument("--api-url", help="base URL of Cloud Resource Manager for the sample call (default: "
                        "derived from the STS endpoint: Google's, its Private Service Connect name, or the emulator)")
    doctor.set_defaults(handler=_lazy("doctor_command", "cmd_doctor"))

    setup = commands.add_parser(
        "setup", help="print the gcloud commands (or Terraform) that create the pool, provider and bindings",
        description="Print what creates the Google side: the APIs, a workload identity pool, an AWS provider "
        "that trusts one AWS account and (attribute condition) one role, and either a service account with the "
        "roles/iam.workloadIdentityUser binding for exactly that role's principalSet, or (--direct-access) roles "
        "granted to the role's principalSet on the resources themselves; optionally org policies, which are "
        "merged with the organization's, never replaced. Flags left out fall back to the seed's environment "
        "variables GCP_PROJECT_NUMBER, GCP_WORKLOAD_ID, GCP_WORKLOAD_PROVIDER, GCP_SERVICE_ACCOUNT_EMAIL, "
        "AWS_ACCOUNT_ID, AWS_ROLE_NAME. With --federation jwt: the AWS side too (outbound identity federation, "
        "the role's sts:GetWebIdentityToken policy) and an OIDC provider trusting the account's issuer.",
    )
    setup.add_argument("--project-id", required=True, help="project that owns the pool and the service account")
    setup.add_argument("--project-number", help="its number (digits; default $GCP_PROJECT_NUMBER)")
    setup.add_argument("--pool-id", help="workload identity pool id (default $GCP_WORKLOAD_ID, else airflow-aws)")
    setup.add_argument("--provider-id",
                       help="AWS provider id (default $GCP_WORKLOAD_PROVIDER, else aws-provider)")
    setup.add_argument("--aws-account-id", help="the AWS account of the role (not needed with a role ARN; default "
                       "$AWS_ACCOUNT_ID)")
    setup.add_argument("--aws-role-name",
                       help="the AWS role Airflow runs as (on MWAA: the execution role); a name or an IAM role ARN "
                       "(default $AWS_ROLE_NAME)")
    setup.add_argument("--aws-partition", choices=AWS_PARTITIONS,
                       help="AWS partition of the role (default: the role ARN's, else aws)")
    setup.add_argument("--service-account",
                       help="service account email or name (default $GCP_SERVICE_ACCOUNT_EMAIL, else "
                       "airflow-wif@PROJECT_ID.iam.gserviceaccount.com)")
    setup.add_argument("--direct-access", action="store_true",
                       help="no service account: grant roles to the AWS role's principalSet on the resources "
                       "(--bucket) and use the federated token directly")
    setup.add_argument("--bucket", action="append", metavar="BUCKET",
                       help="grant --bucket-role on this Cloud Storage bucket (repeatable)")
    setup.add_argument("--bucket-role", default="roles/storage.objectAdmin",
                       help="role granted on each --bucket (default roles/storage.objectAdmin)")
    setup.add_argument("--universe-domain", default="googleapis.com",
                       help="Google universe of the project (default googleapis.com)")
    setup.add_argument("--organization-id", help="organization whose org policies to extend (default: set "
                       "project policies that merge with the organization's)")
    setup.add_argument("--lifetime-over-hour", action="store_true",
                       help="allow the account in the org policy iam.allowServiceAccountCredentialLifetimeExtension "
                       "(lifetime_seconds up to 43200)")
    setup.add_argument("--org-restrictions", action="store_true",
                       help="allow AWS providers (iam.workloadIdentityPoolProviders) and this AWS account "
                       "(iam.workloadIdentityPoolAwsAccounts) in org policies, added to what is allowed already")
    setup.add_argument("--federation", choices=FEDERATIONS, default="sigv4",
                       help="sigv4 (default): an AWS provider verifies a signed GetCallerIdentity request; jwt: AWS "
                       "outbound identity federation, an OIDC provider verifies the JWT GetWebIdentityToken gives "
                       "the role (also prints the AWS side: the feature, the issuer URL, the role's IAM policy)")
    setup.add_argument("--issuer-uri", help="with --federation jwt: the AWS account's outbound-federation issuer URL "
                       "(default: the gcloud script reads it with the AWS CLI; Terraform enables the feature)")
    setup.add_argument("--format", choices=("gcloud", "terraform"), default="gcloud")
    setup.set_defaults(handler=_lazy("setup_command", "cmd_setup"))

    bundle = commands.add_parser("mwaa-bundle", help="write plugins.zip and requirements.txt for Amazon MWAA",
                                 description=MWAA_BUNDLE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    bundle.add_argument("--output", required=True, help="folder to write plugins.zip and requirements.txt to")
    bundle.add_argument("--wheel", help=f"the {DISTRIBUTION} wheel to ship (default: build it from the source tree)")
    bundle.add_argument("--merge", metavar="PLUGINS_ZIP", help="an existing plugins.zip whose files are kept")
    bundle.add_argument("--constraints", help="an https:// constraints URL, or a file shipped in plugins.zip "
                        "(default: MWAA applies its own constraints for its Airflow version)")
    bundle.add_argument("--no-index", action="store_true",
                        help="private network without PyPI: pip installs only from plugins.zip (needs "
                        "--airflow-version or --dependency-wheels)")
    bundle.add_argument("--dependency-wheels", metavar="DIR", help="folder of dependency wheels to add to plugins.zip")
    bundle.add_argument("--airflow-version", metavar="X.Y.Z",
                        help="the MWAA image's Airflow version: with --no-index, download the wheels this provider "
                        "needs beyond the image (its Python, manylinux x86_64, its constraints)")
    bundle.add_argument("--python-version", metavar="3.X",
                        help="the image's Python (default: the known MWAA image's, see above)")
    bundle.set_defaults(handler=_lazy("mwaa_bundle_command", "cmd_mwaa_bundle"))
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one subcommand. Whatever goes wrong ends as one line on stderr and a non-zero status, no traceback:
    2 for bad settings or usage, 1 for anything else."""
    args = _parser().parse_args(argv)
    handler: Handler = args.handler
    error_stream = err or sys.stderr
    try:
        return handler(args, out or sys.stdout, error_stream)
    except Exception as error:  # noqa: BLE001 - a command line prints one line, not a traceback
        from airflow_provider_gcp_wif.errors import WifConfigError  # (google-auth) only when something failed

        if isinstance(error, (WifConfigError, UsageError)):
            print(f"gcp-wif {args.command}: {one_line(error)}", file=error_stream)
            return EXIT_USAGE
        print(f"gcp-wif {args.command}: {type(error).__name__}: {one_line(error, 500)}", file=error_stream)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
