"""The troubleshooting table of ``docs/troubleshooting.md``: generate it from the catalogue in ``fixes.py``.

    python scripts/troubleshooting_table.py            # write the table between the catalogue-table markers
    python scripts/troubleshooting_table.py --check    # exit 1 when the committed table is stale

``tests/cli/test_docs.py`` compares the committed table with the catalogue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from airflow_provider_gcp_wif import diagnosis, fixes

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE = DOCS / "troubleshooting.md"
TABLE_START = "<!-- catalogue-table:start -->"
TABLE_END = "<!-- catalogue-table:end -->"

#: What the failing call shows (Google's words, shortened), per catalogue rule.
SYMPTOMS = {
    ("sts_exchange", "invalid_target"): 'invalid_target: The target service indicated by the "audience" parameters '
                                        "is invalid",
    ("sts_exchange", "jwt_audience"): "invalid_grant: The audience in ID Token [...] does not match the expected "
                                      "audience (federation jwt)",
    ("sts_exchange", "jwt_issuer"): "invalid_grant: The issuer in ID Token ... does not match the expected one in "
                                    "config (federation jwt)",
    ("sts_exchange", "jwt_clock"): "invalid_grant: ID Token issued at ... is stale to sign-in (federation jwt)",
    ("sts_exchange", "jwt_signature"): "invalid_grant: Unable to verify the ID Token signature (federation jwt)",
    ("sts_exchange", "jwt_issuer_keys"): "invalid_grant: Error connecting to the given credential's issuer "
                                         "(federation jwt)",
    ("sts_exchange", "audience_format"): 'invalid_request: Invalid value for "audience" ... full resource name',
    ("sts_exchange", "attribute_condition"): "unauthorized_client: The given credential is rejected by the attribute "
                                             "condition",
    ("sts_exchange", "subject_too_long"): "The size of mapped attribute google.subject exceeds the 127 bytes limit",
    ("sts_exchange", "signature_expired"): "SignatureDoesNotMatch ... Signature expired",
    ("sts_exchange", "signature_mismatch"): "Received invalid AWS response of type SignatureDoesNotMatch",
    ("sts_exchange", "aws_token_expired"): "Received invalid AWS response of type ExpiredToken",
    ("sts_exchange", "aws_key_invalid"): "Received invalid AWS response of type InvalidClientTokenId",
    ("sts_exchange", "request_format"): "AWS request has invalid format",
    ("sts_exchange", "subject_unparseable"): "Invalid format of AWS credentials",
    ("sts_exchange", "account_not_allowed"): "The AWS account ID of the given credential does not match",
    ("sts_exchange", "token_type"): 'Invalid value for "subject_token_type" (or another token type)',
    ("sts_exchange", "grant_type"): "unsupported_grant_type",
    ("sts_exchange", "invalid_scope"): "invalid_scope: The requested scope is invalid",
    ("sts_exchange", "service_disabled"): "403 SERVICE_DISABLED: Security Token Service API has not been used",
    ("sts_exchange", "rate_limited"): "429 (any body): RESOURCE_EXHAUSTED, Quota exceeded, or an empty/HTML answer",
    ("impersonation", "service_disabled"): "403 SERVICE_DISABLED: IAM Service Account Credentials API has not been "
                                           "used",
    ("impersonation", "scope_insufficient"): "403 ACCESS_TOKEN_SCOPE_INSUFFICIENT",
    ("impersonation", "token_type_unsupported"): "401 ACCESS_TOKEN_TYPE_UNSUPPORTED",
    ("impersonation", "permission_denied"): "403 Permission 'iam.serviceAccounts.getAccessToken' denied on resource "
                                            "(or it may not exist)",
    ("impersonation", "lifetime"): "400 ... can not have lifetimes of more than 1 hour",
    ("impersonation", "sa_disabled"): "400 FAILED_PRECONDITION: Precondition check failed",
    ("impersonation", "invalid_argument"): "400 INVALID_ARGUMENT: Request contains an invalid argument",
    ("impersonation", "not_found"): "404 NOT_FOUND (or an empty 404): the service account does not exist",
    ("impersonation", "unauthenticated"): "401 UNAUTHENTICATED: Request had invalid authentication credentials",
    ("impersonation", "rate_limited"): "429 RESOURCE_EXHAUSTED: Quota exceeded ... Generate credentials requests",
}


def catalogue() -> list[tuple[str, str, str]]:
    """(step, rule, fix with placeholders) for every rule of fixes.py, in matching order."""
    context = (diagnosis.PLACEHOLDER_SETTINGS, diagnosis.UNKNOWN_CALLER)
    rows = [("sts_exchange", name, fix(*context)) for name, _, fix in fixes.STS_RULES]
    rows += [("impersonation", name, fix(*context)) for name, _, fix in fixes.IAM_RULES]
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table() -> str:
    lines = ["| step | rule | what you see (Google's words) | fix `gcp-wif` prints |", "| --- | --- | --- | --- |"]
    for step, rule, fix in catalogue():
        symptom = SYMPTOMS.get((step, rule), "(describe me in scripts/troubleshooting_table.py SYMPTOMS)")
        lines.append(f"| `{step}` | `{rule}` | {_cell(symptom)} | {_cell(fix)} |")
    return "\n".join(lines)


def with_table(text: str, table: str) -> str:
    """``text`` (the page) with the part between the markers replaced by ``table``."""
    head, rest = text.split(TABLE_START, 1)
    return f"{head}{TABLE_START}\n{table}\n{TABLE_END}{rest.split(TABLE_END, 1)[1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/troubleshooting.md is stale")
    args = parser.parse_args(argv)
    current = PAGE.read_text()
    wanted = with_table(current, render_table())
    if args.check:
        if wanted != current:
            print(f"{PAGE} is stale: run `python scripts/troubleshooting_table.py`", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
