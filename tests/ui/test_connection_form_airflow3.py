"""Airflow 3 React UI (``airflow api-server``): the gcp_wif connection form, Save, and the Test button against the
emulated clouds. Airflow 3.2+ builds the form from the provider info's ``conn-fields`` / ``ui-field-behaviour``,
3.0 (MWAA 3.0.6) from the hook's widgets, to the same form; 3.0's list has no Test button, so there the test request
goes to the API the later button calls."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from airflow_provider_gcp_wif.provider_info import CONN_FIELDS, HOOK_NAME
from tests.airflow_process import AIRFLOW_VERSION

from .browser import hook_run_in, screenshot, start_server, typed_values, ui_environment

pytestmark = [pytest.mark.ui, pytest.mark.airflow3, pytest.mark.timeout(420)]

CONN_ID = "gcp_wif_ui"
#: Airflow 3.3.2's row Test button posts ``port: Number(null)`` = 0 for a connection without a port, and its API
#: rejects that as "a different destination" (apache/airflow#73298, fixed upstream in the API). Seen only with the
#: exact message below; the request is then sent as the UI means it (no port) so the rest of the flow is tested.
UPSTREAM_PORT_BUG = "The host or port to test differs from the stored connection"


@pytest.fixture
def api_server(emulator, tmp_path, servers):
    environment = ui_environment(
        emulator,
        tmp_path / "home",
        AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
    )
    base = start_server(servers, "api-server", ["api-server", "--host", "127.0.0.1"], environment, tmp_path,
                        "/api/v2/monitor/health")
    return base, environment


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def post_json(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def field_row(dialog, name: str):
    """The form row (label, input, help text) of extra field ``name``."""
    return dialog.locator("[data-scope=field][data-part=root]").filter(has=dialog.page.locator(f"[name=element_{name}]"))


def press_test(page, row, routed: list[bool]):
    """Press the row's Test button; returns the /connections/test response (status, body)."""
    with page.expect_response("**/api/v2/connections/test") as answer:
        row.get_by_role("button", name="Test Connection").click()
    response = answer.value
    body = response.text()
    if response.status == 400 and UPSTREAM_PORT_BUG in body and not routed:
        sent = json.loads(response.request.post_data or "{}")
        assert sent.get("port") == 0, sent  # exactly the upstream bug, nothing of ours

        def without_port_zero(route):
            payload = json.loads(route.request.post_data or "{}")
            if payload.get("port") == 0:
                payload.pop("port")
            route.continue_(post_data=json.dumps(payload))

        page.route("**/api/v2/connections/test", without_port_zero)
        routed.append(True)
        page.locator("[data-scope=toast][data-part=root]").filter(has_text="Bad Request").first.wait_for()
        return press_test(page, row, routed)
    return response.status, body


def test_connection_form_save_and_test_button(api_server, emulator, page):
    started = time.monotonic()
    base, environment = api_server
    info = emulator.info

    # Admin → Connections → Add Connection, type "Google Cloud (AWS Workload Identity Federation)".
    page.goto(f"{base}/", timeout=60_000)
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("[name=connection_id]").fill(CONN_ID)
    dialog.get_by_role("combobox").click()
    dialog.get_by_role("combobox").fill("Workload Identity")
    page.get_by_role("option", name=HOOK_NAME, exact=True).click()

    # Standard fields: host, login, password, port and schema are hidden; only Description stays.
    dialog.locator("[name=description]").wait_for(state="visible")
    for hidden in ("host", "login", "password", "port", "schema"):
        assert dialog.locator(f"[name={hidden}]").count() == 0, f"{hidden} is shown"
    screenshot(page, "airflow3-01-standard-fields")

    # Extra fields: every field of CONN_FIELDS with its label and help text, in order.
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    field_row(dialog, "aws_conn_id").wait_for(state="visible")
    names = [name.removeprefix("element_") for name in
             dialog.locator("[name^=element_]").evaluate_all("elements => elements.map(e => e.name)")]
    assert names == list(CONN_FIELDS), names
    for name, field in CONN_FIELDS.items():
        row = field_row(dialog, name)
        assert row.locator("label").inner_text().strip() == field["label"], name
        assert row.locator("[data-part=helper-text]").inner_text().strip() == field["description"], name
    # The React UI shows no placeholders for extra fields: the formats are in the help texts.
    assert "//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER" in \
        field_row(dialog, "audience").locator("[data-part=helper-text]").inner_text()
    assert "airflow@PROJECT_ID.iam.gserviceaccount.com" in \
        field_row(dialog, "impersonation_chain").locator("[data-part=helper-text]").inner_text()
    assert dialog.locator("[name=element_aws_conn_id]").input_value() == "aws_default"
    assert dialog.locator("[name=element_lifetime_seconds]").input_value() == "3600"
    screenshot(page, "airflow3-02-extra-fields")

    values = typed_values(info)
    for name, value in values.items():
        dialog.locator(f"[name=element_{name}]").fill(value)
    screenshot(page, "airflow3-03-filled")
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden")
    row = page.get_by_role("row").filter(has_text=CONN_ID)
    row.wait_for()
    screenshot(page, "airflow3-04-saved")

    # What was saved is what the hook reads.
    saved = get_json(f"{base}/api/v2/connections/{CONN_ID}")
    assert saved["conn_type"] == "gcp_wif"
    extra = {key: value for key, value in json.loads(saved["extra"]).items() if value is not None}
    assert extra == {**values, "aws_conn_id": "aws_default", "lifetime_seconds": 3600, "num_retries": 5,
                     "federation": "sigv4"}, extra
    # A plain process reads connections from the metadata DB only in Airflow 3's "server" context (as the API
    # server itself does); a task gets them through its supervisor.
    hook = hook_run_in({**environment, "_AIRFLOW_PROCESS_CONTEXT": "server"}, CONN_ID)
    assert hook["ok"], hook["message"]
    assert hook["audience"] == info["audience"]
    assert hook["service_account"] == info["service_account"]
    assert (hook["sts_endpoint"], hook["iam_endpoint"]) == (info["sts_endpoint"], info["iam_endpoint"])
    assert hook["project"] == info["project_id"] and hook["aws_conn_id"] == "aws_default"

    expected = f"arn:aws:sts::{info['aws_account_id']}:assumed-role/wif-role/airflow_aws_default → {info['service_account']}"
    if AIRFLOW_VERSION[:2] < (3, 2):
        # Airflow 3.0's connection list has only Edit and Delete (no Test button, see the screenshot): send the
        # request the later UI's button sends, for the connection as the form saved it.
        assert row.get_by_role("button", name="Test Connection").count() == 0
        exchanges = len(emulator.control.requests("sts"))
        answer = post_json(f"{base}/api/v2/connections/test", {"connection_id": CONN_ID, "conn_type": "gcp_wif",
                                                                 "extra": saved["extra"]})
        assert answer["status"] is True and expected in answer["message"], answer
        assert len(emulator.control.requests("sts")) > exchanges, "the test did not reach the emulated STS"
        emulator.control.remove_bindings(info["service_account"])
        answer = post_json(f"{base}/api/v2/connections/test", {"connection_id": CONN_ID, "conn_type": "gcp_wif",
                                                                 "extra": saved["extra"]})
        assert answer["status"] is False and "impersonation:" in answer["message"], answer
        assert "gcloud iam service-accounts add-iam-policy-binding" in answer["message"], answer
        print(f"airflow {'.'.join(map(str, AIRFLOW_VERSION))} UI test: {time.monotonic() - started:.0f}s")
        return

    # Test: the API server runs the exchange against the emulator and the toast names both identities.
    routed: list[bool] = []
    exchanges = len(emulator.control.requests("sts"))
    status, body = press_test(page, row, routed)
    assert status == 200, body
    toast = page.locator("[data-scope=toast][data-part=root]").filter(has_text="Test Connection Successful")
    toast.wait_for()
    assert expected in toast.inner_text(), toast.inner_text()
    assert len(emulator.control.requests("sts")) > exchanges, "the Test button did not reach the emulated STS"
    screenshot(page, "airflow3-05-test-success")

    # Test after the service account lost its binding: the failed step and the fix.
    emulator.control.remove_bindings(info["service_account"])
    status, body = press_test(page, row, routed)
    assert status == 200, body
    toast = page.locator("[data-scope=toast][data-part=root]").filter(has_text="Test Connection Failed").filter(
        has_text="impersonation:")
    toast.wait_for()
    message = toast.inner_text()
    assert "impersonation:" in message, message
    assert "gcloud iam service-accounts add-iam-policy-binding" in message, message
    screenshot(page, "airflow3-06-test-failure")
    print(f"airflow {'.'.join(map(str, AIRFLOW_VERSION))} UI test: {time.monotonic() - started:.0f}s "
          f"(upstream port-0 workaround {'used' if routed else 'not needed'})")
