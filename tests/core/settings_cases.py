"""Connection extras shared by the settings tests and the no-request test (tests/core/test_settings.py,
tests/core/test_token_service.py): the fixture provider's audience and the malformed settings, each with the field
its error must name."""

from __future__ import annotations

import json

AUDIENCE = "//iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider"

LONG_CONFIG_OIDC = json.dumps(
    {"type": "external_account", "audience": AUDIENCE, "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}
)

MALFORMED: list[tuple[str, dict, str]] = [
    ("project id instead of number", {"project_number": "my-project"}, "project_number"),
    ("project number with spaces", {"project_number": "7345 0123"}, "project_number"),
    ("pool id too short", {"pool_id": "abc"}, "pool_id"),
    ("pool id too long", {"pool_id": "a" * 33}, "pool_id"),
    ("pool id uppercase", {"pool_id": "AWS-Pool"}, "pool_id"),
    ("pool id reserved prefix", {"pool_id": "gcp-pool"}, "pool_id"),
    ("provider id underscore", {"provider_id": "aws_provider"}, "provider_id"),
    ("provider id reserved prefix", {"provider_id": "gcp-aws"}, "provider_id"),
    ("pool id missing", {"pool_id": None}, "pool_id"),
    ("provider id missing", {"provider_id": None}, "provider_id"),
    ("audience without //", {"audience": "iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider", "project_number": None, "pool_id": None, "provider_id": None}, "audience"),
    ("audience of a pool, no provider", {"audience": "//iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/aws-pool", "project_number": None, "pool_id": None, "provider_id": None}, "audience"),
    ("audience with project id", {"audience": "//iam.googleapis.com/projects/my-proj/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider", "project_number": None, "pool_id": None, "provider_id": None}, "audience"),
    ("audience disagrees with pool id", {"audience": AUDIENCE, "pool_id": "other-pool"}, "pool_id"),
    ("audience disagrees with project number", {"audience": AUDIENCE, "project_number": "111"}, "project_number"),
    ("impersonation chain not an email", {"impersonation_chain": "airflow-wif"}, "impersonation_chain"),
    ("impersonation chain with quotes", {"impersonation_chain": '"a@b.iam.gserviceaccount.com"'}, "impersonation_chain"),
    ("impersonation chain as a number", {"impersonation_chain": 42}, "impersonation_chain"),
    ("scope is a service URL", {"scope": "https://my-service-abc.a.run.app"}, "scope"),
    ("scope is plain text", {"scope": "cloud-platform"}, "scope"),
    ("scope over http", {"scope": "http://www.googleapis.com/auth/cloud-platform"}, "scope"),
    ("lifetime zero", {"lifetime_seconds": 0}, "lifetime_seconds"),
    ("lifetime over 12 hours", {"lifetime_seconds": 43201}, "lifetime_seconds"),
    ("lifetime words", {"lifetime_seconds": "one hour"}, "lifetime_seconds"),
    ("lifetime negative", {"lifetime_seconds": "-5"}, "lifetime_seconds"),
    ("lifetime boolean", {"lifetime_seconds": True}, "lifetime_seconds"),
    ("region malformed", {"aws_region": "US East 1"}, "aws_region"),
    ("region is an availability zone", {"aws_region": "us-east-1a"}, "aws_region"),
    ("sts endpoint not a url", {"sts_endpoint": "sts.googleapis.com"}, "sts_endpoint"),
    ("sts endpoint on a foreign host", {"sts_endpoint": "https://sts.evil.example/v1/token"}, "sts_endpoint"),
    ("sts endpoint look-alike host", {"sts_endpoint": "https://sts.googleapis.com.evil.example/v1/token"}, "sts_endpoint"),
    ("sts endpoint with credentials", {"sts_endpoint": "https://user:pw@sts.googleapis.com/v1/token"}, "sts_endpoint"),
    ("iam endpoint plain http off loopback", {"iam_endpoint": "http://iamcredentials.googleapis.com"}, "iam_endpoint"),
    ("iam endpoint on a private address", {"iam_endpoint": "https://10.0.0.5"}, "iam_endpoint"),
    ("universe domain not allowed", {"universe_domain": "evil.example"}, "universe_domain"),
    ("universe domain malformed", {"universe_domain": "not a domain"}, "universe_domain"),
    ("num retries negative", {"num_retries": -1}, "num_retries"),
    ("num retries text", {"num_retries": "many"}, "num_retries"),
    ("project id malformed", {"project": "My Project"}, "project"),
    ("quota project malformed", {"quota_project_id": "X"}, "quota_project_id"),
    ("aws conn id with spaces", {"aws_conn_id": "aws default"}, "aws_conn_id"),
    ("credential config not json", {"credential_config": "{not json"}, "credential_config"),
    ("credential config is a key file", {"credential_config": json.dumps({"type": "service_account"})}, "credential_config"),
    ("credential config for oidc", {"credential_config": LONG_CONFIG_OIDC}, "credential_config"),
    ("credential config audience disagrees", {"credential_config": json.dumps({"type": "external_account", "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request", "audience": AUDIENCE.replace("aws-pool", "other-pool")}), "audience": AUDIENCE}, "audience"),
]
