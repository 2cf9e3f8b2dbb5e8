"""Whatever a connection's extras (or the seed's environment variables) hold, parsing them gives a valid
``WifSettings`` or a ``WifConfigError`` whose ``.field`` is a real field name and whose message is bounded; never
another exception, and never a socket (any connect or name lookup fails the test).

Every key of ``KNOWN_KEYS`` is fuzzed, plain and ``extra__gcp_wif__``-prefixed, and every key the credential
config is read for, with values of every JSON type: null, booleans, integers (also thousands of digits), floats
(nan, inf, huge), text (unicode, control characters, megabytes), lists and objects (also thousands deep). The other
fields are valid, so that each fuzzed value reaches its own validator.
"""

from __future__ import annotations

import json
import math
import re
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif.chain import jwt_audience
from airflow_provider_gcp_wif.config import KNOWN_KEYS, SEED_ENV, WifSettings
from airflow_provider_gcp_wif.constants import AWS_SUBJECT_TOKEN_TYPE, LEGACY_PREFIX
from airflow_provider_gcp_wif.errors import WifConfigError

MESSAGE_LIMIT = 2048
JWT_AUDIENCE = re.compile(r"https://iam\.googleapis\.com/projects/[0-9]{1,20}/locations/global/"
                          r"workloadIdentityPools/[a-z0-9-]{4,32}/providers/[a-z0-9-]{4,32}")
AUDIENCE = "//iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider"
SA = "airflow-wif@wif-demo-project.iam.gserviceaccount.com"
VALID: dict[str, object] = {
    "aws_conn_id": "aws_default",
    "project_number": "734501234567",
    "pool_id": "aws-pool",
    "provider_id": "aws-provider",
    "audience": AUDIENCE,
    "impersonation_chain": SA,
    "project": "wif-demo-project",
    "scope": "https://www.googleapis.com/auth/cloud-platform",
    "lifetime_seconds": 3600,
    "quota_project_id": "billing-project",
    "aws_region": "eu-west-2",
    "universe_domain": "googleapis.com",
    "sts_endpoint": "https://sts.googleapis.com/v1/token",
    "iam_endpoint": "https://iamcredentials.googleapis.com",
    "num_retries": 3,
    "federation": "sigv4",
}
CREDENTIAL_CONFIG: dict[str, object] = {
    "type": "external_account",
    "audience": AUDIENCE,
    "subject_token_type": AWS_SUBJECT_TOKEN_TYPE,
    "token_url": "https://sts.googleapis.com/v1/token",
    "service_account_impersonation_url": f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{SA}:generateAccessToken",
    "service_account_impersonation": {"token_lifetime_seconds": 1800},
    "universe_domain": "googleapis.com",
    "quota_project_id": "billing-project",
    "credential_source": {"environment_id": "aws1"},
}
REAL_FIELDS = set(KNOWN_KEYS) | {"extra"}


def nested(depth: int, leaf: object, kind: str) -> object:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


MEGABYTES = 2 * 1024 * 1024
HUGE = [
    "x" * MEGABYTES, "9" * 5000, "é" * MEGABYTES, "p\r\nX-Injected: yes", "\x00" * 1000, "a@b." * 200_000,
    "https://" + "a." * 500_000 + "googleapis.com", "https://[x", "https://[" + ":" * 10_000, "\uff0f" * 10,
    "3600" + " " * MEGABYTES + "s", "[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000,
    10**5000, -(10**400), 2**64, float("inf"), float("-inf"), float("nan"), 1e308, -0.0,
    nested(5000, "x", "list"), nested(5000, 1, "dict"), ["sa@p.iam.gserviceaccount.com"] * 100_000,
    {"k" * 1000: "v" * MEGABYTES},
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=60), st.text(alphabet="\\@:/.%?#[]\t\n ",
                                                                                    max_size=30),
    st.integers(0, len(HUGE) - 1).map(lambda i: HUGE[i]),  # by index: hypothesis cannot repr some of them
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=4), max_leaves=8)
# Values near the valid ones: what validators get wrong at their edges.
near = st.sampled_from(["", " ", "0", "3600s", "43201", "1.0", "-1", "20", "21", "１２３", "３６００", "1_000",
                        "aws-pool,", "a@b.c", "sa@p.iam.gserviceaccount.com,x", "https://sts.googleapis.com\\@x",
                        "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/aws-pool/providers/",
                        "https://www.googleapis.com/auth/cloud-platform?x=1", "openid email", "googleapis.com.",
                        "GOOGLEAPIS.COM", "us-east-1", "aws default", "jwt", " JWT", "sigv4"])
fuzz_values = st.one_of(json_values, near)


@st.composite
def fuzzed_extras(draw):
    extras = dict(VALID)
    if draw(st.booleans()):
        config = dict(CREDENTIAL_CONFIG)
        for key in draw(st.lists(st.sampled_from(sorted(CREDENTIAL_CONFIG)), max_size=3, unique=True)):
            config[key] = draw(fuzz_values)
        extras["credential_config"] = config if draw(st.booleans()) else _json_text(config)
    for key in draw(st.lists(st.sampled_from(KNOWN_KEYS), min_size=1, max_size=3, unique=True)):
        value = draw(fuzz_values)
        if draw(st.booleans()):
            extras[LEGACY_PREFIX + key] = value
            extras.pop(key, None)
        else:
            extras[key] = value
    if draw(st.integers(0, 9)) == 0:
        extras[draw(st.one_of(st.text(max_size=30), st.sampled_from(["k" * MEGABYTES, LEGACY_PREFIX])))] = draw(
            fuzz_values)
    return extras


def _json_text(config: dict) -> object:
    try:
        return json.dumps(config)
    except (ValueError, RecursionError, TypeError):  # too deep or an int over the digit limit: pass it parsed
        return config


@pytest.fixture
def no_network(monkeypatch):
    attempts: list[object] = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"settings parsing opened a connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: refuse(None, a))
    return attempts


def check_error(err: WifConfigError, fields: set[str]) -> None:
    assert err.field in fields, err.field
    for text in (str(err), repr(err), err.problem, err.fix):
        assert len(text) < MESSAGE_LIMIT, (err.field, len(text), text[:300])


def check_settings(parsed: WifSettings) -> None:
    assert parsed.audience.startswith("//iam.googleapis.com/projects/")
    assert 0 <= parsed.num_retries <= 20 and 1 <= parsed.lifetime_seconds <= 43200
    assert parsed.federation in ("sigv4", "jwt"), parsed.federation
    # The audience AWS would mint a JWT for can only be a Google provider's own name (no attacker-chosen audience).
    assert JWT_AUDIENCE.fullmatch(jwt_audience(parsed)), jwt_audience(parsed)[:200]
    for value in (parsed.audience, parsed.aws_conn_id, parsed.project or "", parsed.quota_project_id or "",
                  parsed.aws_region or "", parsed.sts_endpoint, parsed.iam_endpoint, *parsed.impersonation_chain,
                  *parsed.scopes):
        assert isinstance(value, str) and value.isprintable() and len(value) <= 2048, repr(value)[:200]
    assert all(isinstance(n, int) and not isinstance(n, bool) for n in (parsed.num_retries, parsed.lifetime_seconds))


@settings(max_examples=500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(raw=fuzzed_extras())
def test_any_extras_give_settings_or_a_bounded_config_error_naming_a_field_without_io(no_network, raw):
    try:
        parsed = WifSettings.from_extras(raw, conn_id="fuzzed", allowed_endpoint_hosts="")
    except WifConfigError as err:
        check_error(err, REAL_FIELDS)
        assert str(err).startswith("gcp_wif connection 'fuzzed': ")
    else:
        check_settings(parsed)
    assert no_network == []


@pytest.mark.parametrize("key", [*KNOWN_KEYS, *(LEGACY_PREFIX + k for k in KNOWN_KEYS)])
@pytest.mark.parametrize("value", HUGE, ids=lambda v: type(v).__name__)
def test_every_field_refuses_every_huge_or_deep_value_with_a_bounded_error(no_network, key, value):
    """The exhaustive corner of the fuzz: each huge or deeply nested value in each field."""
    raw = {k: v for k, v in VALID.items() if LEGACY_PREFIX + k != key}
    raw[key] = value
    try:
        parsed = WifSettings.from_extras(raw, conn_id="fuzzed", allowed_endpoint_hosts="")
    except WifConfigError as err:
        check_error(err, REAL_FIELDS)
    else:
        check_settings(parsed)
    assert no_network == []


@pytest.mark.parametrize("key", sorted(CREDENTIAL_CONFIG))
@pytest.mark.parametrize("value", [None, True, 5, 1.5, math.nan, [], {}, "", "x" * MEGABYTES, "https://[x", "\uff0f",
                                   nested(5000, 1, "dict"), 10**5000], ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("federation", ["sigv4", "jwt"])
def test_every_credential_config_key_of_any_type_is_a_config_error(no_network, key, value, federation):
    config = {**CREDENTIAL_CONFIG, key: value}
    if federation == "jwt" and key != "subject_token_type":  # the OIDC provider's file (url source, JWT type)
        config["subject_token_type"] = "urn:ietf:params:oauth:token-type:jwt"
        if key != "credential_source":
            config["credential_source"] = {"url": "http://127.0.0.1:1/token", "format": {"type": "json"}}
    for raw in (config, _json_text(config)):
        try:
            parsed = WifSettings.from_extras({"credential_config": raw, "federation": federation}, conn_id="fuzzed",
                                             allowed_endpoint_hosts="")
        except WifConfigError as err:
            check_error(err, REAL_FIELDS)
        else:
            check_settings(parsed)
    assert no_network == []


def test_reported_escapes_are_config_errors_naming_the_field():
    """The reproductions of the issue, one by one (each escaped as another exception, or was accepted)."""
    base = {"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider"}
    wrapped = {"type": "external_account", "subject_token_type": AWS_SUBJECT_TOKEN_TYPE}
    cases = [
        ({"sts_endpoint": "https://[x"}, "sts_endpoint"),
        ({"scope": "https://[x"}, "scope"),
        ({"sts_endpoint": "https://sts.googleapis.com\uff0fx"}, "sts_endpoint"),
        ({"credential_config": {**wrapped, "audience": 5}}, "credential_config"),
        ({"credential_config": {**wrapped, "service_account_impersonation": []}}, "credential_config"),
        ({"credential_config": {**wrapped, "token_url": {}}}, "credential_config"),
        ({"credential_config": "[" * 100_000 + "]" * 100_000}, "credential_config"),
        ({"credential_config": nested(100_000, 1, "dict")}, "credential_config"),
        ({"lifetime_seconds": "9" * 5000}, "lifetime_seconds"),
        ({"lifetime_seconds": 10**5000}, "lifetime_seconds"),
        ({"project": "x" * 10 * 1024 * 1024}, "project"),
        ({"quota_project_id": "p\r\nX-Injected: yes"}, "quota_project_id"),
        ({"credential_config": {**wrapped, "quota_project_id": "p\r\nX-Injected: yes"}}, "credential_config"),
    ]
    for extras, field in cases:
        with pytest.raises(WifConfigError) as caught:
            WifSettings.from_extras({**base, **extras}, allowed_endpoint_hosts="")
        assert caught.value.field == field, (extras.keys(), caught.value.field)
        assert len(str(caught.value)) < 1000


ENV_FIELDS = set(SEED_ENV) | REAL_FIELDS
SEED_VALID = {"GCP_PROJECT_NUMBER": "734501234567", "GCP_WORKLOAD_ID": "aws-pool",
              "GCP_WORKLOAD_PROVIDER": "aws-provider", "GCP_SERVICE_ACCOUNT_EMAIL": SA, "AWS_REGION": "eu-west-2",
              "TOKEN_LIFETIME": "3600s", "TOKEN_SCOPES": "https://www.googleapis.com/auth/cloud-platform",
              "GCP_WIF_STS_ENDPOINT": "https://sts.googleapis.com/v1/token",
              "GCP_WIF_IAM_ENDPOINT": "https://iamcredentials.googleapis.com"}
HUGE_TEXT = [v for v in HUGE if isinstance(v, str)]
env_text = st.one_of(st.text(max_size=60), near, st.integers(0, len(HUGE_TEXT) - 1).map(lambda i: HUGE_TEXT[i]))


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(changes=st.dictionaries(st.sampled_from([*SEED_ENV, "AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS"]), env_text,
                               min_size=1, max_size=3))
def test_any_seed_environment_gives_settings_or_a_bounded_error_naming_the_variable(no_network, changes):
    env = {**SEED_VALID, **changes}
    try:
        parsed = WifSettings.from_env(env)
    except WifConfigError as err:
        check_error(err, ENV_FIELDS)
    else:
        check_settings(parsed)
    assert no_network == []


def test_the_no_network_guard_catches_a_connection(no_network):
    with pytest.raises(AssertionError):
        socket.create_connection(("127.0.0.1", 9))
