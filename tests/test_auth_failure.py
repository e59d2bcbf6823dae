"""Rejected credentials stop the whole run at once; a per-campaign 403 costs that campaign only.

A 401 means the API user's credentials are wrong for every campaign, so hammering Thulium
with one more 401 per campaign helps nobody: the run stops, says once what to fix, records
the campaigns it never tried as ``skipped`` and leaves every stored row alone. A 403 is a
permission of that API user on that one resource: only that campaign fails.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from standin import Fault, StandIn
from tests.helpers.cli import PASSWORD
from tests.helpers.data import campaign_row, last_run
from tests.helpers.scenario import STANDIN_REQUEST_ID, assert_victim_failed, prepare

CREDENTIALS_HINT = re.compile(r"THULIUM_USER.*THULIUM_PASSWORD")


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_401_stops_the_run_and_skips_every_campaign_not_yet_tried(
    migrated: Engine, api: StandIn, db_url: URL, concurrency: int
) -> None:
    s = prepare(api, db_url, migrated, prefix="A", n=6)

    result = s.sync(THULIUM_PASSWORD="not-the-" + PASSWORD, THULIUM_CONCURRENCY=str(concurrency))

    assert result.code == 1, result.err
    tried = [c for c in s.ids if api.requests_for(c) > 0]
    if concurrency == 1:
        assert api.total_requests == 1
        assert tried == [s.ids[0]]
    else:
        assert 1 <= api.total_requests <= concurrency
    assert all(api.requests_for(c) == 1 for c in tried)
    for campaign_id in s.ids:
        s.assert_untouched(campaign_id)

    run, outcomes = last_run(migrated)
    assert run["outcome"] == "failed"
    assert (run["campaigns_total"], run["campaigns_ok"]) == (6, 0)
    assert (run["campaigns_failed"], run["campaigns_skipped"]) == (len(tried), 6 - len(tried))
    assert (run["rows_inserted"], run["rows_updated"], run["rows_deleted"]) == (0, 0, 0)
    assert run["error"] and "401" in run["error"]
    assert sorted(outcomes) == sorted(s.ids)
    for campaign_id, row in outcomes.items():
        campaign = campaign_row(migrated, campaign_id)
        if campaign_id in tried:
            assert (row["outcome"], row["http_status"], row["attempts"]) == ("failed", 401, 1)
            assert "401" in row["error"] and CREDENTIALS_HINT.search(row["error"])
            assert row["request_id"] and STANDIN_REQUEST_ID.fullmatch(row["request_id"])
        else:
            assert row["outcome"] == "skipped"
            assert "401" in row["error"]
        assert campaign["last_attempt_outcome"] == row["outcome"]
        assert campaign["last_error"] == row["error"]

    # Said once per campaign actually refused (one, at concurrency 1), not once per campaign.
    events = result.events()
    hints = [e for e in events if e.get("campaign_id") and CREDENTIALS_HINT.search(e["message"])]
    assert sorted(e["campaign_id"] for e in hints) == sorted(tried)
    assert all(e["level"] == "error" for e in hints)
    skipped = [e for e in events if e.get("outcome") == "skipped"]
    assert sorted(e["campaign_id"] for e in skipped) == sorted(set(s.ids) - set(tried))
    assert not any(CREDENTIALS_HINT.search(e["message"]) for e in skipped)
    summary = [
        e
        for e in events
        if e.get("run_id") == run["run_id"] and "outcome" in e and not e.get("campaign_id")
    ]
    assert len(summary) == 1 and summary[0]["level"] == "error"
    assert CREDENTIALS_HINT.search(summary[0]["message"])
    assert PASSWORD not in result.err


def test_a_403_on_one_campaign_fails_it_alone(migrated: Engine, api: StandIn, db_url: URL) -> None:
    s = prepare(api, db_url, migrated, prefix="B")
    api.set_permanent_fault(s.victim, Fault.status(403))

    result = s.sync()

    row = assert_victim_failed(
        s,
        result,
        requests=1,
        error=[r"HTTP 403", r"Forbidden"],
        http_status=403,
        request_id=STANDIN_REQUEST_ID,
    )
    assert not CREDENTIALS_HINT.search(row["error"])
