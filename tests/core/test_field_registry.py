"""The tables derived from the field registry (:mod:`airflow_provider_gcp_wif.fields`) are the ones the provider had
before there was a registry: same keys, same order, same content.

``golden/field_registry.json`` was written from the code before the registry existed (KNOWN_KEYS, SEED_ENV,
CONN_FIELDS, the provider info's connection type, the keys that mark a connection as gcp_wif, setup's flags, and
which argument TokenService blames for a bad value), so any drift in a derivation shows here. Adding a field
changes these tables on purpose: update the golden in the same commit.
"""

from __future__ import annotations

import json
import pathlib
import re

import hypothesis
import pytest
from hypothesis import strategies as st

from airflow_provider_gcp_wif import TokenService, config, integration, provider_info, resource_names
from airflow_provider_gcp_wif.cli import setup_args
from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.errors import WifConfigError
from airflow_provider_gcp_wif.fields import BY_KEY

GOLDEN = json.loads((pathlib.Path(__file__).parent / "golden" / "field_registry.json").read_text())

GOOD_SEED_ARGUMENTS = dict(gcp_project_number="123456789012", gcp_workload_id="aws-pool",
                           gcp_workload_provider="aws-provider",
                           gcp_service_account_email="sa@my-project.iam.gserviceaccount.com")
BAD_SEED_ARGUMENTS = dict(gcp_project_number="abc", gcp_workload_id="X", gcp_workload_provider="X",
                          gcp_service_account_email="not an email", aws_region="nowhere", gcp_token_lifetime="abc",
                          gcp_token_scopes="https://evil.example/x", sts_endpoint="ftp://x", iam_endpoint="ftp://x",
                          federation="nope")


def test_known_keys_are_unchanged_in_order():
    assert list(config.KNOWN_KEYS) == GOLDEN["KNOWN_KEYS"]
    assert isinstance(config.KNOWN_KEYS, tuple)


def test_seed_variables_are_unchanged_in_order():
    assert list(config.SEED_ENV.items()) == [tuple(item) for item in GOLDEN["SEED_ENV"]]


def test_connection_form_fields_are_unchanged_in_order_and_content():
    assert json.loads(json.dumps(list(provider_info.CONN_FIELDS.items()))) == GOLDEN["CONN_FIELDS"]
    assert GOLDEN["HIDDEN_FIELDS"] == provider_info.HIDDEN_FIELDS


def test_provider_info_connection_type_is_unchanged():
    info = provider_info.get_provider_info()["connection-types"]
    assert json.loads(json.dumps(info)) == GOLDEN["connection_type"]
    assert list(info[0]["conn-fields"]) == GOLDEN["KNOWN_KEYS"]


@pytest.mark.parametrize("key", [*GOLDEN["KNOWN_KEYS"], "key_path", "keyfile_dict", "credential_config_file",
                                 "idp_issuer_url", "is_anonymous"])
def test_the_keys_that_mark_a_gcp_wif_connection_are_unchanged(key):
    assert integration.looks_like_wif({key: "x"}) is (key in GOLDEN["wif_marker_keys"])


def test_setup_flags_named_for_settings_fields_are_unchanged():
    assert list(setup_args.SETUP_FLAGS.items()) == [tuple(item) for item in GOLDEN["setup_flags"]]


@pytest.mark.parametrize("argument", sorted(BAD_SEED_ARGUMENTS))
def test_token_service_blames_the_argument_it_was_given(argument):
    with pytest.raises(WifConfigError) as caught:
        TokenService(**{**GOOD_SEED_ARGUMENTS, argument: BAD_SEED_ARGUMENTS[argument]})
    assert caught.value.field == GOLDEN["token_service_blames"][argument] == argument


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.one_of(st.text(alphabet="0123456789", max_size=25), st.text(max_size=25),
                            st.from_regex(r"[0-9]{1,22}", fullmatch=True)))
def test_the_forms_project_number_hint_accepts_what_the_settings_accept(value):
    """The form's pattern (provider_info's conn-fields, GcpWifHook's widgets) and the settings' parser read a project
    number by one grammar: a value the form lets through is one the settings accept, and the other way round."""
    form = re.compile(BY_KEY["project_number"].schema["pattern"])
    hypothesis.assume(value != "")  # empty: the form's "not set", which the settings read as absent
    form_accepts = bool(form.search(value))
    assert form_accepts == bool(resource_names.PROJECT_NUMBER.fullmatch(value))
    extras = {"project_number": value, "pool_id": "aws-pool", "provider_id": "aws-provider"}
    try:
        WifSettings.from_extras(extras)
    except WifConfigError as err:
        assert not form_accepts and err.field == "project_number"
    else:
        assert form_accepts
