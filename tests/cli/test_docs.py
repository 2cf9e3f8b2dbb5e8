"""The docs stay true to the code: the troubleshooting table against diagnosis.py's catalogue, the connection page
against provider_info.CONN_FIELDS.

Regenerate the table after changing diagnosis.py: `python -m tests.cli.test_docs` prints it.
"""

from __future__ import annotations

import re
from pathlib import Path

from airflow_provider_gcp_wif import diagnosis
from airflow_provider_gcp_wif.provider_info import CONN_FIELDS

DOCS = Path(__file__).resolve().parents[2] / "docs"
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
    """(step, rule, fix with placeholders) for every rule of diagnosis.py, in matching order."""
    context = (diagnosis.PLACEHOLDER_SETTINGS, diagnosis.UNKNOWN_CALLER)
    rows = [("sts_exchange", name, fix(*context)) for name, _, fix in diagnosis._STS_RULES]
    rows += [("impersonation", name, fix(*context)) for name, _, fix in diagnosis._IAM_RULES]
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table() -> str:
    lines = ["| step | rule | what you see (Google's words) | fix `gcp-wif` prints |", "| --- | --- | --- | --- |"]
    for step, rule, fix in catalogue():
        symptom = SYMPTOMS.get((step, rule), "(describe me in tests/cli/test_docs.py SYMPTOMS)")
        lines.append(f"| `{step}` | `{rule}` | {_cell(symptom)} | {_cell(fix)} |")
    return "\n".join(lines)


def documented_rows() -> dict[tuple[str, str], str]:
    text = (DOCS / "troubleshooting.md").read_text()
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[(cells[0].strip("`"), cells[1].strip("`"))] = cells[3].replace("\\|", "|")
    return rows


def test_every_catalogue_rule_is_in_the_troubleshooting_table_and_nothing_else():
    documented = documented_rows()
    in_code = {(step, rule) for step, rule, _ in catalogue()}
    assert in_code - documented.keys() == set(), "run `python -m tests.cli.test_docs` and paste the table"
    assert documented.keys() - in_code == set(), "the table lists rules diagnosis.py no longer has"


def test_the_table_shows_the_fix_errors_py_prints():
    documented = documented_rows()
    for step, rule, fix in catalogue():
        assert documented[(step, rule)] == fix, f"{step}/{rule}: regenerate with `python -m tests.cli.test_docs`"


def test_every_rule_has_a_symptom():
    assert {(step, rule) for step, rule, _ in catalogue()} <= SYMPTOMS.keys()


def test_the_connection_page_documents_every_field():
    text = (DOCS / "connection.md").read_text()
    for name, field in CONN_FIELDS.items():
        assert f"| `{name}` |" in text, name
        assert field["label"] in text, field["label"]


if __name__ == "__main__":
    print(render_table())


#: MWAA's default secrets lookup pattern: every connection but ``aws_default`` goes to Secrets Manager.
MWAA_LOOKUP_PATTERN = "^(?!aws_default$).*$"


def secrets_manager_kwargs() -> list[tuple[str, dict]]:
    """Every Secrets Manager ``backend_kwargs`` JSON shown in README and docs (inline code with connections_prefix)."""
    import json

    found = []
    for page in [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]:
        for snippet in re.findall(r"`(\{[^`]*\"connections_prefix\"[^`]*\})`", page.read_text()):
            found.append((page.name, json.loads(snippet)))
    return found


def test_every_secrets_manager_example_keeps_mwaa_lookup_pattern():
    """The Amazon provider's SecretsManagerBackend looks a connection up only when
    ``re.match(connections_lookup_pattern, conn_id)``: the examples must leave ``aws_default`` (the execution role)
    to MWAA's environment variable, never shadowed by a secret nor paying a GetSecretValue per task."""
    examples = secrets_manager_kwargs()
    assert {page for page, _ in examples} >= {"mwaa.md", "connection.md"}
    for page, kwargs in examples:
        pattern = kwargs.get("connections_lookup_pattern")
        assert pattern == MWAA_LOOKUP_PATTERN, f"{page}: {kwargs}"
        assert re.match(pattern, "aws_default") is None and re.match(pattern, "gcp_wif_default"), page
