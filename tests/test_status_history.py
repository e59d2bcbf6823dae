"""``status_history`` keeps every version of every status: one row per version, the run that
opened it and the run that closed it, written in the same statements as ``statuses``.
"""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl.migrate import alembic_config
from standin import StandIn
from tests.helpers.cli import make_env, run_cli
from tests.helpers.data import Statuses, status
from tests.helpers.history import assert_history_matches

CAMPAIGN = "00001"


FIRST: Statuses = [
    status("1", "TO_CALL", None, "Nowy"),
    status("2", "CALL", 20, "Dzwonić"),
    status("3", "NO_CALL", None, "Nie dzwonić"),
]


def versions(engine: Engine, status_id: str) -> list[dict[str, Any]]:
    """The versions of one status of the campaign, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT * FROM status_history WHERE campaign_id = :c AND status_id = :s "
                "ORDER BY valid_from"
            ),
            {"c": CAMPAIGN, "s": status_id},
        ).mappings()
        return [dict(row) for row in rows]


def run_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT run_id FROM sync_runs ORDER BY run_id")).scalars())


def sync(api: StandIn, db_url: URL, statuses: Statuses) -> None:
    api.set_statuses(CAMPAIGN, statuses)
    result = run_cli("sync", env=make_env(api, db_url, [CAMPAIGN]))
    assert result.code == 0, result.err


def test_a_first_sync_opens_one_version_per_status(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    sync(api, db_url, FIRST)

    (run,) = run_ids(migrated)
    for item in FIRST:
        (only,) = versions(migrated, str(item["status_id"]))
        assert (only["system_status"], only["dictionary_status_id"], only["name"]) == (
            item["system_status"],
            item["dictionary_status_id"],
            item["name"],
        )
        assert (only["opened_by_run"], only["valid_to"], only["closed_by_run"]) == (run, None, None)
    assert_history_matches(migrated)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "Nowy kontakt"},
        {"system_status": "MY_RECORD"},
        {"dictionary_status_id": 10},
    ],
    ids=["renamed", "system-status", "dictionary-status-id"],
)
def test_a_change_closes_the_version_and_opens_one_with_the_new_values(
    api: StandIn, db_url: URL, migrated: Engine, change: dict[str, Any]
) -> None:
    sync(api, db_url, FIRST)
    sync(api, db_url, [{**FIRST[0], **change}, *FIRST[1:]])

    first_run, second_run = run_ids(migrated)
    old, new = versions(migrated, "1")
    assert (old["opened_by_run"], old["closed_by_run"]) == (first_run, second_run)
    assert old["valid_to"] == new["valid_from"]  # no gap and no overlap
    assert old["name"] == "Nowy"
    assert (new["opened_by_run"], new["valid_to"], new["closed_by_run"]) == (second_run, None, None)
    assert all(new[field] == value for field, value in change.items())
    for unchanged in ("2", "3"):
        assert len(versions(migrated, unchanged)) == 1
    assert_history_matches(migrated)


def test_a_deletion_closes_the_version_and_a_revival_opens_a_new_one(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    sync(api, db_url, FIRST)
    sync(api, db_url, FIRST[:2])
    sync(api, db_url, FIRST)

    first_run, deleting_run, reviving_run = run_ids(migrated)
    before, after = versions(migrated, "3")
    assert (before["opened_by_run"], before["closed_by_run"]) == (first_run, deleting_run)
    assert before["valid_to"] is not None
    assert (after["opened_by_run"], after["closed_by_run"], after["valid_to"]) == (
        reviving_run,
        None,
        None,
    )
    assert after["valid_from"] > before["valid_to"]  # the gap: while Thulium did not list it
    assert after["name"] == before["name"] == "Nie dzwonić"
    assert_history_matches(migrated)


def test_an_unchanged_resync_writes_nothing_to_the_history(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    sync(api, db_url, FIRST)
    with migrated.connect() as conn:
        before = conn.execute(text("SELECT xmin::text, * FROM status_history")).all()

    sync(api, db_url, FIRST)

    with migrated.connect() as conn:
        after = conn.execute(text("SELECT xmin::text, * FROM status_history")).all()
    assert sorted(after) == sorted(before)  # the same rows, not one rewritten (xmin)
    assert_history_matches(migrated)


def test_the_upgrade_back_fills_the_history_of_a_database_that_holds_data(
    empty_database: Engine,
) -> None:
    with empty_database.begin() as conn:
        command.upgrade(alembic_config(conn), "0005")
        conn.execute(
            text(
                "INSERT INTO campaigns (campaign_id) VALUES ('00001');"
                "INSERT INTO statuses (campaign_id, status_id, system_status, "
                "dictionary_status_id, name, first_seen_at, updated_at, deleted_at) VALUES "
                "('00001', '1', 'CALL', 5, 'Listed', '2026-01-01Z', '2026-02-01Z', NULL),"
                "('00001', '2', 'NO_CALL', NULL, 'Gone', '2026-01-01Z', '2026-01-15Z', "
                "'2026-03-01Z')"
            )
        )

    with empty_database.begin() as conn:
        command.upgrade(alembic_config(conn), "head")

    with empty_database.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT status_id, valid_from, valid_to, system_status, dictionary_status_id, "
                "name, opened_by_run, closed_by_run FROM status_history ORDER BY status_id"
            )
        ).all()
    assert [(r.status_id, r.valid_from.isoformat(), r.valid_to) for r in rows[:1]] == [
        ("1", "2026-02-01T00:00:00+00:00", None)  # open since its last change
    ]
    assert (rows[1].valid_from.isoformat(), rows[1].valid_to.isoformat()) == (
        "2026-01-15T00:00:00+00:00",  # closed when it was deleted
        "2026-03-01T00:00:00+00:00",
    )
    assert [(r.system_status, r.dictionary_status_id, r.name) for r in rows] == [
        ("CALL", 5, "Listed"),
        ("NO_CALL", None, "Gone"),
    ]
    assert all(r.opened_by_run is None and r.closed_by_run is None for r in rows)
    assert_history_matches(empty_database)
