"""Google's errors (shared/ERRORS.md) arrive as the right step, with Google's reason and a fix to run."""

from __future__ import annotations

import pickle

import google.auth.transport.requests
import pytest
from google.auth import exceptions as google_exceptions

from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.credentials import get_credentials
from airflow_provider_gcp_wif.diagnosis import Caller, parse_google_answer, translate, translate_exception
from airflow_provider_gcp_wif.errors import WifExchangeError
from airflow_provider_gcp_wif.resource_names import principal_member

REQUEST = google.auth.transport.requests.Request()


def fail(credentials) -> WifExchangeError:
    with pytest.raises(WifExchangeError) as caught:
        credentials.refresh(REQUEST)
    return caught.value


# -- produced by the emulated clouds ---------------------------------------------------------------------------


def test_unknown_provider_is_an_invalid_target_with_the_describe_command(emulator, settings_for, role_supplier):
    error = fail(get_credentials(settings_for(provider_id="no-such-provider"), role_supplier()))
    assert (error.step, error.code, error.status) == ("sts_exchange", "invalid_target", None) or error.code == "invalid_target"
    assert "pool or provider is disabled or deleted" in error.reason
    assert "gcloud iam workload-identity-pools providers describe no-such-provider" in error.fix


def test_disabled_provider_says_how_to_enable_it(emulator, settings_for, role_supplier):
    emulator.control.set_provider(disabled=True)
    error = fail(get_credentials(settings_for(), role_supplier()))
    assert error.step == "sts_exchange" and error.code == "invalid_target"
    assert "providers update-aws aws-provider --workload-identity-pool=aws-pool --location=global --no-disabled" in error.fix


def test_disabled_pool_says_how_to_enable_it(emulator, settings_for, role_supplier):
    emulator.control.set_pool(disabled=True)
    error = fail(get_credentials(settings_for(), role_supplier()))
    assert error.code == "invalid_target"
    assert "gcloud iam workload-identity-pools update aws-pool --location=global --no-disabled" in error.fix


def test_attribute_condition_rejection_names_this_workers_role(emulator, settings_for, role_supplier, aws_env):
    emulator.control.set_provider(attribute_condition={"aws_role_in": [f"arn:aws:sts::{aws_env['aws_account_id']}:assumed-role/other"]})
    error = fail(get_credentials(settings_for(), role_supplier()))
    assert error.step == "sts_exchange" and error.code == "unauthorized_client"
    assert "rejected by the attribute condition" in error.reason
    assert f"attribute.aws_role=='arn:aws:sts::{aws_env['aws_account_id']}:assumed-role/wif-role'" in error.fix
    assert "this worker is arn:aws:sts::" in error.fix


def test_long_subject_says_how_to_map_a_shorter_one(emulator, settings_for, aws_env):
    import boto3

    from airflow_provider_gcp_wif.supplier import Boto3Supplier

    session_name = "mwaa-generated-session-name-0123456789"
    assumed = boto3.client("sts").assume_role(RoleArn=aws_env["long_role_arn"], RoleSessionName=session_name)["Credentials"]
    session = boto3.session.Session(aws_access_key_id=assumed["AccessKeyId"], aws_secret_access_key=assumed["SecretAccessKey"],
                                    aws_session_token=assumed["SessionToken"], region_name=aws_env["aws_region"])
    supplier = Boto3Supplier(lambda: session, identity_key="long-role", description="long role")
    assert len(supplier.caller_arn().encode()) > 127
    error = fail(get_credentials(settings_for(impersonation_chain=None), supplier))
    assert error.code == "invalid_request" and "127 bytes" in error.reason
    assert "--attribute-mapping" in error.fix and "bytes)" in error.fix


def test_untrusted_aws_account_says_which_account_to_allow(emulator, settings_for, monkeypatch, aws_env):
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", aws_env["untrusted_aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_env["untrusted_aws_secret_access_key"])
    error = fail(get_credentials(settings_for(impersonation_chain=None), Boto3Supplier.default_chain()))
    assert error.step == "sts_exchange" and error.code == "invalid_grant"
    assert "does not match the account configured on the provider" in error.reason
    assert f"--account-id={aws_env['untrusted_aws_account_id']}" in error.fix


def test_wrong_aws_secret_is_a_signature_mismatch(emulator, settings_for, monkeypatch):
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x" * 40)
    error = fail(get_credentials(settings_for(impersonation_chain=None), Boto3Supplier.default_chain()))
    assert error.step == "sts_exchange" and "SignatureDoesNotMatch" in error.reason
    assert "access key and secret" in error.fix
    assert "x" * 40 not in str(error)


def test_stale_signature_says_to_sync_the_clock(emulator, settings_for, role_supplier):
    emulator.control.advance_clock(16 * 60)
    error = fail(get_credentials(settings_for(impersonation_chain=None), role_supplier()))
    assert error.step == "sts_exchange"
    assert "clock" in error.fix


def test_lifetime_error_is_an_impersonation_error(emulator, settings_for, role_supplier):
    error = fail(get_credentials(settings_for(lifetime_seconds=3601), role_supplier()))
    assert error.step == "impersonation" and error.code == "INVALID_ARGUMENT"
    assert "can not have lifetimes of more than 1 hour" in error.reason


def test_disabled_service_account_says_how_to_enable_it(emulator, settings_for, role_supplier, aws_env):
    emulator.control.add_service_account(aws_env["service_account"], disabled=True)
    error = fail(get_credentials(settings_for(), role_supplier()))
    assert error.step == "impersonation"
    assert f"gcloud iam service-accounts enable {aws_env['service_account']}" in error.fix


def test_disabled_iam_credentials_api_says_which_service_to_enable(emulator, settings_for, role_supplier):
    emulator.control.configure({"disabled_services": ["iamcredentials.googleapis.com"]})
    error = fail(get_credentials(settings_for(), role_supplier()))
    assert error.step == "impersonation" and error.status == 403
    assert "gcloud services enable iamcredentials.googleapis.com" in error.fix


def test_disabled_sts_api_says_which_service_to_enable(emulator, settings_for, role_supplier):
    emulator.control.configure({"disabled_services": ["sts.googleapis.com"]})
    error = fail(get_credentials(settings_for(), role_supplier()))
    assert error.step == "sts_exchange"
    assert "gcloud services enable sts.googleapis.com" in error.fix


def test_rate_limit_and_outage_are_retryable_and_say_so(emulator, settings_for, role_supplier):
    emulator.control.inject_faults("iam", statuses=[429])
    error = fail(get_credentials(settings_for(num_retries=0), role_supplier()))
    assert error.step == "impersonation" and error.retryable and error.status == 429
    assert "quota" in error.fix


# -- the whole catalogue, translated (bodies as in ERRORS.md) ---------------------------------------------------

CONTEXT = (  # the settings and the caller that the fixes name
    WifSettings.from_extras({"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider",
                             "impersonation_chain": "sa@p-123456.iam.gserviceaccount.com", "lifetime_seconds": 7200},
                            conn_id="gcp_wif_default"),
    Caller(arn_lookup=lambda: "arn:aws:sts::111111111111:assumed-role/airflow/session-1"),
)
ROLE_MEMBER = ("principalSet://iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/"
               "aws-pool/attribute.aws_role/arn:aws:sts::111111111111:assumed-role/airflow")


def oauth(error, description):
    return {"error": error, "error_description": description}


def rpc(code, status, message, reasons=()):
    return {"error": {"code": code, "status": status, "message": message,
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": r} for r in reasons]}}


CATALOGUE = [
    ("sts_invalid_target_provider_missing_or_disabled", "sts_exchange", oauth("invalid_target", 'The target service indicated by the "audience" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn\'t exist.'), "providers describe aws-provider"),
    ("sts_audience_not_full_resource_name", "sts_exchange", oauth("invalid_request", 'Invalid value for "audience". This value should be the full resource name of the Identity Provider.'), "//iam.googleapis.com/projects/PROJECT_NUMBER"),
    ("sts_attribute_condition_rejected", "sts_exchange", oauth("unauthorized_client", "The given credential is rejected by the attribute condition."), "assumed-role/airflow'"),
    ("sts_mapped_subject_exceeds_127_bytes", "sts_exchange", oauth("invalid_request", "The size of mapped attribute google.subject exceeds the 127 bytes limit. Either modify your attribute mapping or the incoming assertion to produce a mapped attribute that is less than 127 bytes."), "--attribute-mapping"),
    ("sts_aws_signature_does_not_match", "sts_exchange", oauth("invalid_grant", "Received invalid AWS response of type SignatureDoesNotMatch with error message: The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."), "access key and secret"),
    ("sts_aws_signature_expired_replay", "sts_exchange", oauth("invalid_grant", "Received invalid AWS response of type SignatureDoesNotMatch with error message: Signature expired: 20240101T000000Z is now earlier than 20240101T001502Z (20240101T003002Z - 15 min.)"), "clock"),
    ("sts_aws_security_token_expired", "sts_exchange", oauth("invalid_grant", "Received invalid AWS response of type ExpiredToken with error message: The security token included in the request is expired"), "session credentials had expired"),
    ("sts_aws_request_invalid_format", "sts_exchange", oauth("invalid_grant", "AWS request has invalid format."), "x-goog-cloud-target-resource"),
    ("sts_aws_subject_token_unparseable", "sts_exchange", oauth("invalid_request", "Invalid format of AWS credentials:Error at line 0:0: Unexpected end of stream : expected '{'\n"), "serialized GetCallerIdentity"),
    ("sts_aws_missing_target_resource_header", "sts_exchange", oauth("invalid_grant", "AWS request has invalid format."), "audience sent equals"),
    ("sts_aws_account_not_allowed", "sts_exchange", oauth("invalid_grant", "The AWS account ID of the given credential does not match the account configured on the provider."), "--account-id=111111111111"),
    ("sts_invalid_token_type_or_grant", "sts_exchange", oauth("invalid_request", 'Invalid value for "subject_token_type".'), "aws4_request"),
    ("sts_invalid_scope", "sts_exchange", oauth("invalid_scope", "The requested scope is invalid."), "cloud-platform"),
    ("sts_service_disabled", "sts_exchange", rpc(403, "PERMISSION_DENIED", "Security Token Service API has not been used in project 1 before or it is disabled.", ["SERVICE_DISABLED"]), "gcloud services enable sts.googleapis.com"),
    ("sts_internal_500", "sts_exchange", rpc(500, "INTERNAL", "Internal error encountered."), "retry"),
    ("sts_unavailable_503", "sts_exchange", rpc(503, "UNAVAILABLE", "The service is currently unavailable."), "retry"),
    ("iamcredentials_get_access_token_denied", "impersonation", rpc(403, "PERMISSION_DENIED", "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).", ["IAM_PERMISSION_DENIED"]), ROLE_MEMBER),
    ("iamcredentials_get_openid_token_denied", "impersonation", rpc(403, "PERMISSION_DENIED", "Permission 'iam.serviceAccounts.getOpenIdToken' denied on resource (or it may not exist)."), ROLE_MEMBER),
    ("iamcredentials_invalid_argument_scope", "impersonation", rpc(400, "INVALID_ARGUMENT", "Request contains an invalid argument."), "without quotes"),
    ("iamcredentials_lifetime_over_3600", "impersonation", rpc(400, "INVALID_ARGUMENT", "Access tokens for service account sa@p can not have lifetimes of more than 1 hour. Use the Org Policy Constraint constraints/iam.allowServiceAccountCredentialLifetimeExtension to allow up to 12 hours."), "allowServiceAccountCredentialLifetimeExtension sa@p-123456.iam.gserviceaccount.com"),
    ("iamcredentials_scope_insufficient_on_federated_token", "impersonation", rpc(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.", ["ACCESS_TOKEN_SCOPE_INSUFFICIENT"]), "cloud-platform"),
    ("iamcredentials_unauthenticated_bad_or_expired_bearer", "impersonation", rpc(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", ["ACCESS_TOKEN_EXPIRED"]), "retry"),
    ("iamcredentials_federated_token_type_unsupported_signjwt", "impersonation", rpc(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", ["ACCESS_TOKEN_TYPE_UNSUPPORTED"]), "impersonation_chain"),
    ("iamcredentials_service_disabled", "impersonation", rpc(403, "PERMISSION_DENIED", "IAM Service Account Credentials API has not been used in project 1 before or it is disabled.", ["SERVICE_DISABLED"]), "gcloud services enable iamcredentials.googleapis.com"),
    ("iamcredentials_invalid_delegates", "impersonation", rpc(403, "PERMISSION_DENIED", "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).", ["IAM_PERMISSION_DENIED"]), "roles/iam.workloadIdentityUser"),
    ("iamcredentials_sa_disabled", "impersonation", rpc(400, "FAILED_PRECONDITION", "Precondition check failed."), "gcloud iam service-accounts enable"),
    ("iamcredentials_rate_limited_429", "impersonation", rpc(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Generate credentials requests'.", ["RATE_LIMIT_EXCEEDED"]), "quota"),
    ("iamcredentials_5xx", "impersonation", rpc(503, "UNAVAILABLE", "The service is currently unavailable."), "retry"),
]


@pytest.mark.parametrize("step, body, fix_fragment", [c[1:] for c in CATALOGUE], ids=[c[0] for c in CATALOGUE])
def test_every_catalogued_error_names_its_step_keeps_googles_words_and_gives_a_fix(step, body, fix_fragment):
    answer = parse_google_answer(body)
    assert answer is not None
    error = translate(step, answer, *CONTEXT)
    assert error.step == step
    assert answer.message.strip()[:40] in error.reason
    assert fix_fragment in error.fix
    assert str(error).startswith({"sts_exchange": "Google STS token exchange failed (sts_exchange): ",
                                  "impersonation": "service account impersonation failed (impersonation): "}[step])
    assert error.retryable == (answer.status in (429, 500, 503) or answer.code in ("INTERNAL", "UNAVAILABLE"))


def test_google_auth_exceptions_are_unwrapped_to_the_body():
    body = '{"error": "invalid_target", "error_description": "The target service indicated by the \\"audience\\" parameters is invalid."}'
    error = translate_exception("sts_exchange", google_exceptions.OAuthError("Error code invalid_target: ...", body), *CONTEXT)
    assert error.code == "invalid_target"
    iam_body = '{"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "Permission denied"}}'
    error = translate_exception("impersonation", google_exceptions.RefreshError("Unable to acquire impersonated credentials", iam_body), *CONTEXT)
    assert error.status == 403 and ROLE_MEMBER in error.fix


def test_unknown_errors_keep_googles_text_and_name_the_step():
    error = translate_exception("impersonation", google_exceptions.RefreshError("Something new went wrong"), *CONTEXT)
    assert error.step == "impersonation" and "Something new went wrong" in error.reason
    assert "gcp-wif doctor --conn-id gcp_wif_default" in error.fix


def test_member_for_users_and_roles():
    assert principal_member("1", "p", "arn:aws:iam::111111111111:user/alice") == (
        "principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/subject/"
        "arn:aws:iam::111111111111:user/alice")
    assert principal_member("1", "p", "arn:aws:sts::111111111111:assumed-role/r/s").endswith(
        "attribute.aws_role/arn:aws:sts::111111111111:assumed-role/r")


def test_exchange_error_is_a_refresh_error_and_survives_pickling():
    error = WifExchangeError("impersonation", "denied.", "bind it.", status=403, code="PERMISSION_DENIED")
    assert isinstance(error, google_exceptions.RefreshError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.step, copy.reason, copy.fix, copy.status, copy.code) == ("impersonation", "denied.", "bind it.", 403, "PERMISSION_DENIED")


@pytest.mark.parametrize("retryable", [True, False])
def test_retryable_is_google_auths_own_flag_and_survives_pickling(retryable):
    """``retryable`` is passed to google-auth's ``GoogleAuthError`` (2.29.0, the oldest pin, takes it), not shadowed
    by a property of ours: google-auth's own code and ours read the same attribute."""
    error = WifExchangeError("sts_exchange", "busy.", "retry.", status=503, retryable=retryable)
    assert "retryable" not in vars(WifExchangeError)
    assert google_exceptions.GoogleAuthError.retryable.fget(error) is retryable
    assert pickle.loads(pickle.dumps(error)).retryable is retryable
