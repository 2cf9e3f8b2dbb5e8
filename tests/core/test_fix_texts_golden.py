"""Every fix text, byte for byte: each catalogue rule, each status fallback and each AWS answer of the jwt route,
rendered for placeholder settings and for concrete ones on both routes (delegates, another universe and partition,
a jwt caller), against ``golden/fix_texts.json``. The troubleshooting table (tests/cli/test_docs.py) pins only the
placeholder sigv4 texts; this pins the rest, so a refactor that changes a byte of what users read fails here.

The golden file was written by the code before the errors.py split (``python -m tests.core.test_fix_texts_golden``
regenerates it: do that only for a fix text you mean to change, and say so in the commit).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from airflow_provider_gcp_wif import diagnosis, fixes
from airflow_provider_gcp_wif.config import WifSettings

GOLDEN = Path(__file__).parent / "golden" / "fix_texts.json"
SA = "airflow-wif@wif-demo-project.iam.gserviceaccount.com"
HOP = "hop-1@wif-demo-project.iam.gserviceaccount.com"
SIGV4_CALLER = "arn:aws:sts::123456789012:assumed-role/wif-role/session-1"
CN_CALLER = "arn:aws-cn:sts::123456789012:assumed-role/a-role-with-a-rather-long-name/i-0123456789abcdef0"
JWT_CLAIMS = {"iss": "https://0000.tokens.sts.global.api.aws", "sub": "arn:aws:iam::123456789012:role/svc/wif-role",
              "https://sts.amazonaws.com/": {"aws_account": "123456789012"}}
STATUSES = (None, 400, 401, 403, 404, 409, 429, 500, 503)
AWS_CODES = ("OutboundWebIdentityFederationDisabledException", "AccessDenied", "SessionDurationEscalationException",
             "ExpiredToken", "InvalidClientTokenId", "Throttling", "ValidationError", "")


def cases() -> dict[str, tuple[WifSettings, diagnosis.Caller]]:
    base = {"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider"}
    return {
        "placeholders": (diagnosis.PLACEHOLDER_SETTINGS, diagnosis.UNKNOWN_CALLER),
        "sigv4": (WifSettings.from_extras({**base, "impersonation_chain": f"{HOP},{SA}", "lifetime_seconds": 7200},
                                          conn_id="gcp_wif_default"),
                  diagnosis.Caller(arn_lookup=lambda: SIGV4_CALLER)),
        "sigv4-direct-other-universe": (
            WifSettings.from_extras({**base, "universe_domain": "example.test"}, allowed_endpoint_hosts="example.test"),
            diagnosis.Caller(arn_lookup=lambda: CN_CALLER)),
        "sigv4-caller-lookup-fails": (WifSettings.from_extras({**base, "impersonation_chain": SA}),
                                      diagnosis.Caller(arn_lookup=lambda: 1 / 0)),  # type: ignore[arg-type,return-value]
        "jwt": (WifSettings.from_extras({**base, "provider_id": "aws-jwt", "federation": "jwt",
                                         "impersonation_chain": SA}, conn_id="gcp_wif_jwt"),
                diagnosis.Caller(arn_lookup=lambda: SIGV4_CALLER, jwt_claims_lookup=lambda: JWT_CLAIMS)),
        "jwt-no-claims": (WifSettings.from_extras({**base, "federation": "jwt"}), diagnosis.UNKNOWN_CALLER),
    }


class _ClientError(Exception):
    """botocore's ClientError shape: ``response`` with ``Error`` and ``ResponseMetadata``."""

    def __init__(self, code: str) -> None:
        super().__init__(f"An error occurred ({code})")
        self.response = {"Error": {"Code": code, "Message": f"{code} happened"} if code else {},
                         "ResponseMetadata": {"HTTPStatusCode": 400}}


def render() -> dict[str, str]:
    texts: dict[str, str] = {}
    for case, (settings, caller) in cases().items():
        for step, rules in (("sts_exchange", fixes.STS_RULES), ("impersonation", fixes.IAM_RULES)):
            for name, _, fix in rules:
                texts[f"{case}/{step}/{name}"] = fix(settings, caller)
            for status in STATUSES:
                texts[f"{case}/{step}/status-{status}"] = fixes.fix_for_status(step, status, settings, caller)
    audience = "https://iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/aws-pool/" \
               "providers/aws-jwt"
    for code in AWS_CODES:
        for arn in (None, SIGV4_CALLER, "arn:aws:iam::123456789012:role/svc/wif-role"):
            error = diagnosis.translate_aws_error(_ClientError(code) if code else OSError("connection reset"),
                                                  "the AWS connection 'aws_default'", "eu-west-1", audience, arn)
            texts[f"aws/{code or 'no-code'}/{arn}"] = f"{error.reason} | {error.fix}"
    return texts


def test_every_fix_text_is_byte_identical_to_the_golden_file():
    golden = json.loads(GOLDEN.read_text())
    rendered = render()
    assert rendered.keys() == golden.keys()
    assert {key: text for key, text in rendered.items() if golden[key] != text} == {}


if __name__ == "__main__":
    json.dump(render(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
