"""A first sync lands exactly what the API serves, and the run is recorded."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import StandIn
from tests.helpers.cli import make_env, run_cli
from tests.helpers.data import as_api, canonical, seed_campaigns, stored_statuses

IDS = ["00001", "00002", "0000A", "zz9Z0"]


def test_first_sync_lands_exactly_the_api_data(api: StandIn, db_url: URL, migrated: Engine) -> None:
    served = seed_campaigns(api, IDS, n=7)
    env = make_env(api, db_url, IDS)

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    for campaign_id in IDS:
        rows = stored_statuses(migrated, campaign_id)
        assert as_api(rows) == canonical(served[campaign_id])
        assert all(r["deleted_at"] is None for r in rows.values())
        assert all(r["first_seen_at"] == r["updated_at"] for r in rows.values())
    with migrated.connect() as conn:
        campaigns = conn.execute(
            text("SELECT campaign_id, last_synced_at, last_attempt_outcome FROM campaigns")
        ).all()
        run = conn.execute(text("SELECT * FROM sync_runs")).mappings().one()
    assert sorted(c.campaign_id for c in campaigns) == sorted(IDS)
    assert all(
        c.last_synced_at is not None and c.last_attempt_outcome == "succeeded" for c in campaigns
    )
    assert run["outcome"] == "succeeded"
    assert (run["campaigns_total"], run["campaigns_ok"], run["rows_inserted"]) == (4, 4, 28)
    per_campaign = [e for e in result.events() if e.get("campaign_id")]
    assert sorted(e["campaign_id"] for e in per_campaign) == sorted(IDS)
    assert all(e["outcome"] == "succeeded" and e["run_id"] == run["run_id"] for e in per_campaign)


def test_integer_status_ids_are_stored_as_their_decimal_text(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    api.set_statuses(
        "00007",
        [
            {"status_id": 12, "system_status": "CALL", "dictionary_status_id": None, "name": "a"},
            {"status_id": "012", "system_status": "CALL", "dictionary_status_id": 5, "name": "b"},
        ],
    )
    env = make_env(api, db_url, ["00007"])

    assert run_cli("sync", env=env).code == 0

    rows = stored_statuses(migrated, "00007")
    assert sorted(rows) == ["012", "12"]
    assert rows["012"]["dictionary_status_id"] == 5
