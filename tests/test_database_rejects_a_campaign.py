"""A campaign the database refuses (a DBA's constraint, a trigger) fails alone.

The batch it was written in is rolled back and written again campaign by campaign, so the
others are saved and only the refused campaign is recorded as failed, its old rows intact.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import StandIn
from tests.helpers.cli import make_env, run_cli
from tests.helpers.data import as_api, canonical, seed_campaigns, stored_statuses
from tests.helpers.history import assert_history_matches

IDS = ["00001", "00002", "00003", "00004"]


def test_a_refused_campaign_fails_alone_and_the_batch_is_isolated(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    served = seed_campaigns(api, IDS)
    env = make_env(api, db_url, IDS, THULIUM_CONCURRENCY="1")
    assert run_cli("sync", env=env).code == 0
    before = stored_statuses(migrated, "00003")
    with migrated.begin() as conn:  # what a DBA might add: names must not be blank
        conn.execute(
            text("ALTER TABLE statuses ADD CONSTRAINT dba_name_not_blank CHECK (btrim(name) <> '')")
        )
    try:
        renamed = {c: [{**s, "name": f"{s['name']} (2)"} for s in served[c]] for c in IDS}
        renamed["00003"][0]["name"] = "   "
        for campaign_id, statuses in renamed.items():
            api.set_statuses(campaign_id, statuses)

        result = run_cli("sync", env=env)

        assert result.code == 1, result.err
        assert stored_statuses(migrated, "00003") == before  # refused: untouched
        for campaign_id in ("00001", "00002", "00004"):
            assert as_api(stored_statuses(migrated, campaign_id)) == canonical(renamed[campaign_id])
        with migrated.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT campaign_id, outcome, error FROM sync_run_campaigns "
                    "WHERE run_id = (SELECT max(run_id) FROM sync_runs) ORDER BY campaign_id"
                )
            ).all()
            run = conn.execute(text("SELECT outcome FROM sync_runs ORDER BY run_id DESC")).first()
        assert [(c, o) for c, o, _ in rows] == [
            ("00001", "succeeded"),
            ("00002", "succeeded"),
            ("00003", "failed"),
            ("00004", "succeeded"),
        ]
        assert "the database rejected this campaign's data" in rows[2][2]
        assert "dba_name_not_blank" in rows[2][2]
        assert run is not None and run[0] == "partial"
        assert any("writing them one by one" in e["message"] for e in result.events())
        assert_history_matches(migrated)
    finally:
        with migrated.begin() as conn:
            conn.execute(text("ALTER TABLE statuses DROP CONSTRAINT dba_name_not_blank"))
