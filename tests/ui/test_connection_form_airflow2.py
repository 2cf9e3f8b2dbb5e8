"""Airflow 2.x UI (Flask AppBuilder ``airflow webserver``): the gcp_wif connection form built from the hook's
``get_connection_form_widgets`` / ``get_ui_field_behaviour``, the Test button, and Save, against the emulated
clouds. Runs under every Airflow 2 (skipped under Airflow 3): passed unchanged on MWAA's 2.9.2, 2.10.3 and 2.11.2
pins."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from playwright.sync_api import expect

from airflow_provider_gcp_wif.provider_info import CONN_FIELDS, HOOK_NAME
from tests.airflow_process import airflow

from .browser import hook_run_in, screenshot, start_server, typed_values, ui_environment

pytestmark = [pytest.mark.ui, pytest.mark.airflow2, pytest.mark.timeout(420)]

CONN_ID = "gcp_wif_ui"


@pytest.fixture
def webserver(emulator, tmp_path, servers):
    environment = ui_environment(emulator, tmp_path / "home", AIRFLOW__WEBSERVER__WORKERS="1",
                                 AIRFLOW__WEBSERVER__SECRET_KEY=secrets.token_hex(16))
    password = secrets.token_urlsafe(12)
    airflow(["users", "create", "--username", "admin", "--password", password, "--role", "Admin",
             "--email", "admin@example.com", "--firstname", "Ad", "--lastname", "Min"], environment)
    base = start_server(servers, "webserver", ["webserver", "--hostname", "127.0.0.1"], environment, tmp_path,
                        "/health")
    return base, environment, password


def alert_text(page, contains: str) -> str:
    alert = page.locator(".alert").filter(has_text=contains)
    alert.first.wait_for(state="visible")
    return alert.first.inner_text()


def test_connection_form_test_button_and_save(webserver, emulator, page):
    started = time.monotonic()
    base, environment, password = webserver
    info = emulator.info

    page.goto(f"{base}/login/", timeout=60_000)
    page.fill("#username", "admin")
    page.fill("#password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/home")

    # Admin → Connections → add ("+"), type "Google Cloud (AWS Workload Identity Federation)".
    page.locator("a.dropdown-toggle", has_text="Admin").click()
    page.locator("a", has_text="Connections").first.click()
    page.wait_for_url("**/connection/list/**")
    page.locator("a[href*='/connection/add']").first.click()
    page.wait_for_load_state("load")  # connection_form.js binds its change handler on load
    page.select_option("#conn_type", label=HOOK_NAME)
    page.locator("#extra__gcp_wif__pool_id").wait_for(state="visible")

    # Hidden standard fields; ours with labels, help texts and placeholders.
    for hidden in ("host", "login", "password", "port", "schema"):
        expect(page.locator(f"#{hidden}"), f"{hidden} is shown").to_be_hidden(timeout=5_000)
    assert page.locator("#description").is_visible()  # the form did render the standard part
    for name, field in CONN_FIELDS.items():
        widget = page.locator(f"#extra__gcp_wif__{name}")
        assert widget.is_visible(), name
        row = page.locator("tr").filter(has=page.locator(f"#extra__gcp_wif__{name}"))
        assert row.locator("label").inner_text().strip() == field["label"], name
        assert row.locator(".help-block").inner_text().strip() == field["description"], name
        assert (widget.get_attribute("placeholder") or "") == field["placeholder"], name
    assert page.locator("#extra__gcp_wif__audience").get_attribute("placeholder").startswith(
        "//iam.googleapis.com/projects/NUMBER/")
    assert page.locator("#extra__gcp_wif__impersonation_chain").get_attribute("placeholder") == \
        "airflow@PROJECT_ID.iam.gserviceaccount.com"
    screenshot(page, "airflow2-01-form")

    page.fill("#conn_id", CONN_ID)
    values = {"aws_conn_id": "aws_default", **typed_values(info)}
    for name, value in values.items():
        page.fill(f"#extra__gcp_wif__{name}", value)
    screenshot(page, "airflow2-02-filled")

    # Test (the webserver runs the exchange against the emulator): both identities.
    exchanges = len(emulator.control.requests("sts"))
    page.get_by_role("button", name="Test").click()
    expected = f"arn:aws:sts::{info['aws_account_id']}:assumed-role/wif-role/airflow_aws_default → {info['service_account']}"
    assert expected in alert_text(page, "→")
    assert len(emulator.control.requests("sts")) > exchanges, "the Test button did not reach the emulated STS"
    screenshot(page, "airflow2-03-test-success")

    # Save: the extras are what the hook reads, in a fresh process with the webserver's AIRFLOW_HOME.
    page.locator("input[type=submit][value=Save], button:has-text('Save')").first.click()
    page.wait_for_url("**/connection/list/**")
    page.locator("td", has_text=CONN_ID).first.wait_for()
    screenshot(page, "airflow2-04-saved")
    saved = json.loads(airflow(["connections", "get", CONN_ID, "-o", "json"], environment).stdout.strip()
                       .splitlines()[-1])
    saved = saved[0] if isinstance(saved, list) else saved
    assert saved["conn_type"] == "gcp_wif", saved
    stored = saved["extra_dejson"] if "extra_dejson" in saved else json.loads(saved["extra"])  # 2.11: extra_dejson
    extra = {key: value for key, value in stored.items() if value not in (None, "")}
    # The FAB form posts the integer fields as text; the hook parses them.
    assert extra == {**values, "lifetime_seconds": "3600", "num_retries": "5", "federation": "sigv4"}, extra
    hook = hook_run_in(environment, CONN_ID)
    assert hook["ok"], hook["message"]
    assert hook["audience"] == info["audience"]
    assert hook["service_account"] == info["service_account"]
    assert (hook["sts_endpoint"], hook["iam_endpoint"]) == (info["sts_endpoint"], info["iam_endpoint"])
    assert (hook["lifetime_seconds"], hook["num_retries"]) == (3600, 5)

    # Test from the saved connection's edit form after the service account lost its binding.
    emulator.control.remove_bindings(info["service_account"])
    page.goto(f"{base}/connection/list/")
    page.locator("tr", has_text=CONN_ID).locator("a[href*='/connection/edit/']").first.click()
    page.locator("#extra__gcp_wif__pool_id").wait_for(state="visible")
    page.get_by_role("button", name="Test").click()
    message = alert_text(page, "impersonation:")
    assert "gcloud iam service-accounts add-iam-policy-binding" in message, message
    screenshot(page, "airflow2-05-test-failure")
    print(f"airflow 2 UI test: {time.monotonic() - started:.0f}s")
