"""One reading of AWS's error answers (diagnosis.aws_error_code), for the jwt supplier's decisions and the fix texts:
it agrees with botocore's own ClientError on every code, and the fix text names the same code."""

from __future__ import annotations

import botocore.exceptions
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif.diagnosis import aws_error_code, translate_aws_error

CODES = st.one_of(st.sampled_from(["AccessDenied", "AccessDeniedException", "SessionDurationEscalationException",
                                   "OutboundWebIdentityFederationDisabledException", "Throttling"]),
                  st.from_regex(r"[A-Z][A-Za-z]{0,30}", fullmatch=True))


@settings(max_examples=200, derandomize=True)
@given(CODES, st.text(max_size=40), st.sampled_from([400, 403, 500]))
def test_the_code_is_botocores(code, message, status):
    err = botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetWebIdentityToken")
    assert aws_error_code(err) == err.response["Error"]["Code"] == code
    assert f"answered {code}" in translate_aws_error(err, "role r", "us-east-1", "https://aud").reason


def test_anything_but_an_aws_answer_has_no_code():
    assert aws_error_code(botocore.exceptions.EndpointConnectionError(endpoint_url="https://sts.example")) == ""
    assert aws_error_code(ValueError("no answer")) == ""
