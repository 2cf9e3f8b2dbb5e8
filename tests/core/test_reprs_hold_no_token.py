"""The token-holding value objects of the host cache and the ID token cache: their reprs (what a debugger, a
``repr`` in a log line, or a traceback formatter that shows locals prints) hold no token."""

from __future__ import annotations

import datetime

from airflow_provider_gcp_wif import host_cache, id_tokens
from airflow_provider_gcp_wif.refresh import RefreshWindows

TOKEN = "ya29.a-live-access-token-that-must-never-be-printed"


def test_a_shared_token_repr_holds_no_token():
    now = datetime.datetime(2030, 1, 1)
    shared = host_cache.SharedToken(TOKEN, "sa@p.iam.gserviceaccount.com", RefreshWindows(now, now, now), now)

    assert TOKEN not in repr(shared)
    assert TOKEN not in str(shared)
    assert "sa@p.iam.gserviceaccount.com" in repr(shared)


def test_an_id_token_cache_entry_repr_holds_no_token():
    entry = id_tokens._CachedIdToken(token=TOKEN, windows=id_tokens.id_token_windows(datetime.datetime(2030, 1, 1),
                                                                                    datetime.datetime(2029, 12, 31)))

    assert TOKEN not in repr(entry)
    assert TOKEN not in repr(dict(id_tokens._cache, key=entry))
