"""The reporting views say what happened to the campaigns in an analyst's terms.

Most tests read the reporting sample (``tests/helpers/reporting.py``): four nights of real
syncs in which statuses are renamed, moved to another system_status, deleted and revived, a
campaign fails and another stops being active. The others build what they need in a database
of their own, so the sample is never disturbed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from alembic import command
from sqlalchemy import Engine, text

from etl.migrate import alembic_config
from tests.helpers.reporting import (
    CHANGING,
    CHANGING_BY_NIGHT,
    DROPPED,
    DROPPED_STATUSES,
    FAILING,
    FAILING_STATUSES,
    NIGHTS,
    STATS,
    UNDOCUMENTED,
    Sample,
)


def _rows(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(text(sql), params).mappings()]


def test_current_statuses_are_what_thulium_lists_now_with_their_meaning(
    reporting_sample: Sample,
) -> None:
    rows = _rows(
        reporting_sample.engine,
        "SELECT * FROM current_statuses ORDER BY campaign_id, status_id",
    )

    served = {
        CHANGING: CHANGING_BY_NIGHT[-1],
        FAILING: FAILING_STATUSES,
        DROPPED: DROPPED_STATUSES,
    }
    assert [(r["campaign_id"], r["status_id"], r["name"], r["system_status"]) for r in rows] == [
        (campaign_id, s["status_id"], s["name"], s["system_status"])
        for campaign_id, statuses in sorted(served.items())
        for s in sorted(statuses, key=lambda s: s["status_id"])
    ]
    revived = next(r for r in rows if r["status_id"] == "103")
    assert (revived["system_status_pl"], revived["system_status_en"]) == (
        "Nie dzwonić",
        "Do not call",
    )
    unknown = next(r for r in rows if r["system_status"] == UNDOCUMENTED)
    assert (unknown["system_status_pl"], unknown["system_status_en"]) == (None, None)


def test_status_changes_have_one_row_per_addition_change_deletion_and_revival(
    reporting_sample: Sample,
) -> None:
    rows = _rows(
        reporting_sample.engine,
        "SELECT * FROM status_changes WHERE campaign_id = :c ORDER BY changed_at, status_id",
        c=CHANGING,
    )

    events = [
        (reporting_sample.night_of(r["run_id"]), r["status_id"], r["change"], r["what_changed"])
        for r in rows
    ]
    assert events == [
        (0, "101", "added", None),
        (0, "102", "added", None),
        (0, "103", "added", None),
        (0, "104", "added", None),
        (1, "101", "changed", "name"),
        (1, "102", "changed", "system_status"),
        (1, "103", "deleted", None),
        (2, "105", "added", None),
        (3, "103", "revived", None),
    ]


def test_a_change_shows_the_values_before_and_after(reporting_sample: Sample) -> None:
    rows = _rows(
        reporting_sample.engine,
        "SELECT * FROM status_changes WHERE campaign_id = :c AND change <> 'added' "
        "ORDER BY changed_at, status_id",
        c=CHANGING,
    )

    columns = (
        "status_id",
        "change",
        "previous_name",
        "name",
        "previous_system_status",
        "system_status",
        "previous_dictionary_status_id",
        "dictionary_status_id",
    )
    values = [tuple(r[c] for c in columns) for r in rows]
    assert values == [
        ("101", "changed", "Nowy", "Nowy kontakt", "TO_CALL", "TO_CALL", None, None),
        ("102", "changed", "Oddzwonić", "Oddzwonić", "CALL", "CALL_NO_SOONER_THAN", 7, 7),
        ("103", "deleted", None, "Nie dzwonić", None, "NO_CALL", None, None),
        ("103", "revived", "Nie dzwonić", "Nie dzwonić", "NO_CALL", "NO_CALL", None, None),
    ]
    deleted, revived = rows[2], rows[3]
    assert deleted["changed_at"] < revived["changed_at"]
    with reporting_sample.engine.connect() as conn:
        deleted_at = conn.execute(
            text(
                "SELECT valid_to FROM status_history "
                "WHERE status_id = '103' AND valid_to IS NOT NULL"
            )
        ).scalar_one()
    assert deleted["changed_at"] == deleted_at


def test_history_back_filled_by_revision_0006_shows_as_added_or_backfilled(
    empty_database: Engine,
) -> None:
    with empty_database.begin() as conn:
        command.upgrade(alembic_config(conn), "0005")
        conn.execute(text("INSERT INTO campaigns (campaign_id) VALUES ('00001')"))
        conn.execute(
            text(
                "INSERT INTO statuses (campaign_id, status_id, system_status, name, "
                "first_seen_at, updated_at, deleted_at) VALUES "
                "('00001', 'same', 'CALL', 'never changed', '2026-01-01Z', '2026-01-01Z', NULL), "
                "('00001', 'renamed', 'CALL', 'renamed once', '2026-01-01Z', '2026-02-01Z', NULL), "
                "('00001', 'gone', 'CALL', 'deleted', '2026-01-01Z', '2026-01-01Z', '2026-03-01Z')"
            )
        )
    with empty_database.begin() as conn:
        command.upgrade(alembic_config(conn), "head")

    rows = _rows(
        empty_database,
        "SELECT status_id, change, changed_at::date::text AS day, run_id FROM status_changes "
        "ORDER BY status_id, changed_at",
    )

    assert rows == [
        {"status_id": "gone", "change": "added", "day": "2026-01-01", "run_id": None},
        {"status_id": "gone", "change": "deleted", "day": "2026-03-01", "run_id": None},
        {"status_id": "renamed", "change": "backfilled", "day": "2026-02-01", "run_id": None},
        {"status_id": "same", "change": "added", "day": "2026-01-01", "run_id": None},
    ]


def test_status_mix_counts_each_campaigns_current_statuses_by_system_status(
    reporting_sample: Sample,
) -> None:
    rows = _rows(
        reporting_sample.engine,
        "SELECT campaign_id, system_status, status_count, share_percent, system_status_en "
        "FROM status_mix WHERE campaign_id = :c ORDER BY system_status",
        c=FAILING,
    )

    assert [(r["system_status"], r["status_count"], float(r["share_percent"])) for r in rows] == [
        ("CALL", 2, 50.0),
        ("NO_CALL", 1, 25.0),
        ("TO_CALL", 1, 25.0),
    ]
    assert rows[0]["system_status_en"] == "Call"
    with reporting_sample.engine.connect() as conn:
        per_campaign: dict[str, int] = {
            campaign_id: total
            for campaign_id, total in conn.execute(
                text("SELECT campaign_id, sum(status_count) FROM status_mix GROUP BY 1")
            )
        }
    assert per_campaign == {CHANGING: 5, FAILING: 4, DROPPED: 3}


def test_campaign_progress_daily_keeps_each_days_last_observation(
    reporting_sample: Sample,
) -> None:
    rows = _rows(
        reporting_sample.engine,
        "SELECT * FROM campaign_progress_daily WHERE campaign_id = :c ORDER BY time",
        c=CHANGING,
    )

    assert [r["completion_percent"] for r in rows] == [
        syncs[-1][CHANGING][1] for syncs in STATS
    ]  # night 2 synced twice: 20 %, then 25 %
    assert [r["records_count"] for r in rows] == [syncs[-1][CHANGING][0] for syncs in STATS]
    for row in rows:
        assert row["time"] == dt.datetime.combine(row["day"], dt.time(), dt.UTC)
        assert row["day"] == row["observed_at"].astimezone(dt.UTC).date()
    assert [reporting_sample.night_of(r["run_id"]) for r in rows] == list(range(NIGHTS))
    assert len({r["day"] for r in rows}) == NIGHTS


def test_campaign_progress_daily_days_are_utc_whatever_the_sessions_time_zone(
    reporting_sample: Sample,
) -> None:
    query = "SELECT campaign_id, day, time FROM campaign_progress_daily ORDER BY 1, 2"
    with reporting_sample.engine.connect() as conn:
        in_utc = conn.execute(text(query)).all()
        for zone in ("Pacific/Kiritimati", "America/Adak"):  # UTC+14, UTC-10
            conn.execute(text(f"SET TIME ZONE '{zone}'"))
            assert conn.execute(text(query)).all() == in_utc
        conn.rollback()


def test_campaign_freshness_says_how_old_each_campaigns_data_is_and_whether_it_is_active(
    reporting_sample: Sample,
) -> None:
    rows = {
        r["campaign_id"]: r
        for r in _rows(reporting_sample.engine, "SELECT * FROM campaign_freshness")
    }

    assert {c: (r["active"], r["last_attempt_outcome"]) for c, r in rows.items()} == {
        CHANGING: (True, "succeeded"),
        FAILING: (True, "failed"),
        DROPPED: (False, "succeeded"),
    }
    assert rows[CHANGING]["hours_since_sync"] < 1
    assert 24 < rows[FAILING]["hours_since_sync"] < 25  # failed tonight: last night's data
    assert 48 < rows[DROPPED]["hours_since_sync"] < 49  # not synced since it left, a night ago
    assert "500" in rows[FAILING]["last_error"]
    assert rows[CHANGING]["last_error"] is None
    assert rows[DROPPED]["inactive_since"] > rows[DROPPED]["last_seen_active_at"]
    assert rows[CHANGING]["inactive_since"] is None


def test_a_campaign_never_listed_active_is_neither_active_nor_inactive(
    empty_database: Engine,
) -> None:
    with empty_database.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
        conn.execute(text("INSERT INTO campaigns (campaign_id) VALUES ('00009')"))

    rows = _rows(
        empty_database, "SELECT active, last_synced_at, hours_since_sync FROM campaign_freshness"
    )

    assert rows == [{"active": None, "last_synced_at": None, "hours_since_sync": None}]
