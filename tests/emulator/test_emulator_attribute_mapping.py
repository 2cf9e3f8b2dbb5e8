"""The emulated STS evaluates a provider's attribute mapping and attribute condition (CEL) as Google does."""

from __future__ import annotations

import contextlib
import re

import pytest
from google.auth.transport.requests import Request
from hypothesis import given, settings
from hypothesis import strategies as st
from wif_chain import assume_role, exchange, google_credentials, serialize, signed_request

from airflow_provider_gcp_wif.testing import cel

ROLE_ARN = "arn:aws:sts::123456789012:assumed-role/wif-role"

# -- the language -------------------------------------------------------------------------------------------------

ASSERTION = {"arn": "arn:aws:sts::123456789012:assumed-role/wif-role/airflow", "account": "123456789012",
             "userid": "AROAEXAMPLE:airflow"}


@pytest.mark.parametrize(("expression", "expected"), [
    ("assertion.arn", ASSERTION["arn"]),
    (cel.AWS_ROLE_DEFAULT, ROLE_ARN),
    ("assertion.arn.extract('assumed-role/{role_name}/')", "wif-role"),
    ("assertion.arn.extract('{account_arn}assumed-role/')", "arn:aws:sts::123456789012:"),
    ("assertion.arn.extract('nothing-like-this/{x}/')", ""),
    ('assertion.account == "123456789012" && assertion.arn.startsWith("arn:aws:sts::")', True),
    ("assertion.account in ['111111111111', '123456789012']", True),
    ("!(assertion.account in ['111111111111'])", True),
    ("assertion.arn.endsWith('/airflow') || assertion.nope == 'x'", True),
    ("assertion.nope == 'x' || assertion.arn.contains('wif-role')", True),
    ("assertion.account != '123456789012' ? 'a' : 'b' + 'c'", "bc"),
    ("'it\\'s' + \"\\\"q\\\"\"", "it's\"q\""),
    ("size(assertion.account) == 12 && assertion.userid.size() == 19", True),
])
def test_expressions_evaluate_as_cel_does(expression, expected):
    assert cel.evaluate(expression, {"assertion": ASSERTION}) == expected


@pytest.mark.parametrize("expression", [
    "assertion.nope", "assertion.arn + 1", "assertion.arn ? 'a' : 'b'", "assertion.nope == 'x' && true",
    "unknown", "assertion.arn.upper()", "__import__('os')",
])
def test_evaluation_errors_are_cel_errors(expression):
    with pytest.raises(cel.CelError):
        cel.evaluate(expression, {"assertion": ASSERTION})


@pytest.mark.parametrize("expression", ["assertion.", "'open", "a ==", "(a", "a ? b", "a b", "1 +", "a.b(,)"])
def test_syntax_errors_are_cel_errors(expression):
    with pytest.raises(cel.CelError):
        cel.parse(expression)


_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-", min_size=1,
                max_size=64)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(partition=st.sampled_from(["aws", "aws-us-gov", "aws-cn"]), account=st.from_regex(r"\A[0-9]{12}\Z"),
       role=_NAME, session=_NAME, user=st.booleans())
def test_googles_default_aws_mapping_gives_the_role_arn_without_the_session(partition, account, role, session, user):
    """Differential: the CEL default mapping against a plain reading of the ARN."""
    arn = (f"arn:{partition}:iam::{account}:user/{role}" if user
           else f"arn:{partition}:sts::{account}:assumed-role/{role}/{session}")
    subject, attributes, _ = cel.map_assertion(None, {"arn": arn, "account": account, "userid": "x"})
    assert subject == arn
    expected = arn if user else re.sub(r"/[^/]+$", "", arn)
    assert attributes == {"aws_role": expected}


# -- the exchange -------------------------------------------------------------------------------------------------


def _exchange(emulator):
    info = emulator.info
    return exchange(info, serialize(signed_request(assume_role(info), info["audience"])))


def test_a_cel_condition_on_the_role_admits_that_role_and_rejects_others(emulator):
    emulator.control.set_provider(attribute_condition=f"attribute.aws_role == '{ROLE_ARN}'")
    assert _exchange(emulator).status_code == 200
    emulator.control.set_provider(attribute_condition="attribute.aws_role == 'arn:aws:sts::1:assumed-role/x'")
    response = _exchange(emulator)
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


def test_a_condition_on_an_attribute_that_is_not_mapped_rejects_the_credential(emulator):
    emulator.control.set_provider(attribute_condition="attribute.aws_account == '123456789012'")
    assert _exchange(emulator).json()["error"] == "unauthorized_client"
    emulator.control.set_provider(attribute_mapping={**cel.AWS_DEFAULT_MAPPING,
                                                     "attribute.aws_account": "assertion.account"})
    assert _exchange(emulator).status_code == 200


def test_a_custom_mapping_replaces_the_default_one_and_its_principal_sets(emulator):
    """A mapping without attribute.aws_role (Google drops the default when any mapping is set): the principalSet
    binding on the role no longer matches, so impersonation is denied."""
    info = emulator.info
    emulator.control.set_provider(attribute_mapping={"google.subject": "assertion.arn"})
    credentials = google_credentials(info, assume_role(info), impersonate=info["service_account"])
    with pytest.raises(Exception, match="getAccessToken"):
        credentials.refresh(Request())
    emulator.control.set_provider(attribute_mapping={
        "google.subject": "assertion.arn.extract('assumed-role/{role_name}/')",
        "attribute.aws_role": cel.AWS_ROLE_DEFAULT})
    credentials = google_credentials(info, assume_role(info), impersonate=info["service_account"])
    credentials.refresh(Request())
    assert credentials.token


def test_a_mapping_without_google_subject_or_with_bad_cel_is_refused_at_configure_time(emulator):
    from airflow_provider_gcp_wif.testing import EmulatorControlError

    with pytest.raises(EmulatorControlError, match=r"google\.subject"):
        emulator.control.set_provider(attribute_mapping={"attribute.aws_role": "assertion.arn"})
    with pytest.raises(EmulatorControlError, match="Syntax error"):
        emulator.control.set_provider(attribute_condition="attribute.aws_role ==")


@settings(derandomize=True, max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("assertion.arn account attribute aws_role extract('{x}/') \"?:+=!&|[],()")),
               max_size=80))
def test_any_text_either_evaluates_or_is_a_cel_error(text):
    """Whatever a provider's mapping or condition says, the evaluator answers or raises CelError (which the STS
    turns into Google's rejection): never another exception, never Python evaluation."""
    with contextlib.suppress(cel.CelError):
        cel.evaluate(text, {"assertion": ASSERTION, "attribute": {"aws_role": ROLE_ARN}})


def test_deep_nesting_is_a_cel_error_not_a_crash():
    with pytest.raises(cel.CelError):
        cel.evaluate("(" * 2000 + "true" + ")" * 2000, {})
    with pytest.raises(cel.CelError):
        cel.evaluate("!" * 3000 + "true", {})
