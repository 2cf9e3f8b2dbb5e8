"""The backoff between attempts: ``min(8 s, initial * 2**n) * (0.5 + U/2)`` for retry n (from 0), at most
``num_retries`` pauses, for the access-token exchange and for ``generateIdToken`` (initial 0.5 s) alike. The pauses
are recorded instead of slept, with the jitter's uniform draw pinned."""

from __future__ import annotations

import random
import time

import google.auth.transport.requests
import pytest

from airflow_provider_gcp_wif import id_tokens
from airflow_provider_gcp_wif.credentials import WifCredentials
from airflow_provider_gcp_wif.errors import WifExchangeError

REQUEST = google.auth.transport.requests.Request()


def expected(initial: float, draw: float, pauses: int) -> list[float]:
    return [pytest.approx(min(8.0, initial * 2**n) * (0.5 + draw / 2)) for n in range(pauses)]


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


@pytest.mark.parametrize("draw", [0.0, 0.37, 0.999])
@pytest.mark.parametrize(("faults", "num_retries"), [(5, 5), (6, 5), (2, 0), (3, 4)])
def test_the_exchange_backs_off_exponentially_with_jitter_up_to_num_retries(
    emulator, settings_for, role_supplier, monkeypatch, pauses, draw, faults, num_retries
):
    monkeypatch.setattr(random, "random", lambda: draw)
    emulator.control.inject_faults("sts", statuses=[503] * faults)
    credentials = WifCredentials(settings_for(num_retries=num_retries), role_supplier(), retry_initial_delay=1.0)
    if faults > num_retries:
        with pytest.raises(WifExchangeError) as caught:
            credentials.refresh(REQUEST)
        assert caught.value.retryable and caught.value.status == 503
    else:
        credentials.refresh(REQUEST)
        assert credentials.token
    attempts = min(faults, num_retries) + 1
    assert len(emulator.control.requests("sts")) == attempts
    assert pauses == expected(1.0, draw, attempts - 1)


@pytest.mark.parametrize("draw", [0.0, 0.999])
def test_generate_id_token_backs_off_from_half_a_second(emulator, settings_for, role_supplier, monkeypatch, pauses,
                                                        draw):
    monkeypatch.setattr(random, "random", lambda: draw)
    id_tokens.clear_cache()
    credentials = WifCredentials(settings_for(num_retries=5), role_supplier())
    credentials.federated_token(REQUEST)
    emulator.control.inject_faults("iam.generateIdToken", statuses=[503, 429, 500, 503, 502])
    assert id_tokens.get_id_token(credentials, "https://service.example")
    assert pauses == expected(0.5, draw, 5)


def test_each_retry_is_logged_with_its_number_and_pause(emulator, settings_for, role_supplier, monkeypatch, pauses,
                                                        caplog):
    # The first attempt runs before tenacity takes over (retry_transient): the numbering and pauses must not shift.
    monkeypatch.setattr(random, "random", lambda: 0.5)
    emulator.control.inject_faults("sts", statuses=[503] * 3)
    credentials = WifCredentials(settings_for(num_retries=4), role_supplier(), retry_initial_delay=1.0)
    with caplog.at_level("INFO", logger="airflow_provider_gcp_wif.credentials"):
        credentials.refresh(REQUEST)
    lines = [r.getMessage() for r in caplog.records if "failed transiently" in r.getMessage()]
    # min(8 s, 1 s * 2**n) * (0.5 + 0.5 / 2) for n = 0, 1, 2
    assert [line.split("; ", 1)[1] for line in lines] == ["retry 1 of 4 in 0.75s", "retry 2 of 4 in 1.50s",
                                                          "retry 3 of 4 in 3.00s"]
    assert pauses == expected(1.0, 0.5, 3)
