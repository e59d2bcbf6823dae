"""Re-syncs write only what changed: renames, additions, soft deletes and revivals, exactly counted.

"Untouched" is checked three ways: each row's ``xmin`` (any UPDATE, even one writing the same
values, gives the row a new version with a new ``xmin``), ``updated_at``, and the server's
own write counters for ``statuses`` (``pg_stat_user_tables``). Those counters are flushed by
each backend at exit (before it leaves ``pg_stat_activity``), so they are read after every
connection of the CLI has gone; ``pg_stat_force_next_flush()`` would only flush the calling
backend, not the job's. The counters are proven sensitive by a control step that changes one
row and must see exactly one update.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl.standin import Fault, StandIn
from tests.helpers.cli import make_env, run_cli
from tests.helpers.data import as_api, canonical, stored_statuses


def _status(
    status_id: str | int, system_status: str, dictionary_status_id: int | None, name: str
) -> dict[str, object]:
    return {
        "status_id": status_id,
        "system_status": system_status,
        "dictionary_status_id": dictionary_status_id,
        "name": name,
    }


def _xmins(engine: Engine, campaign_id: str) -> dict[str, str]:
    """``status_id`` → the row version's ``xmin``: changes whenever the row is rewritten."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status_id, xmin::text FROM statuses WHERE campaign_id = :c"),
            {"c": campaign_id},
        ).all()
    return {status_id: xmin for status_id, xmin in rows}


def _wait_for_job_connections_to_close(engine: Engine) -> None:
    """A backend flushes its table statistics on exit, before leaving pg_stat_activity."""
    deadline = time.monotonic() + 10
    while True:
        with engine.connect() as conn:
            left = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = 'thulium-etl'"
                )
            ).scalar_one()
        if left == 0:
            return
        assert time.monotonic() < deadline, f"{left} thulium-etl connection(s) still open"
        time.sleep(0.02)


def _statuses_writes(engine: Engine) -> dict[str, int]:
    """Cumulative tuple writes to ``statuses`` as the statistics system counts them."""
    _wait_for_job_connections_to_close(engine)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = (
            conn.execute(
                text(
                    "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del "
                    "FROM pg_stat_user_tables WHERE relname = 'statuses'"
                )
            )
            .mappings()
            .one()
        )
    return dict(row)


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in before}


def _last_run(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(
            conn.execute(text("SELECT * FROM sync_runs ORDER BY run_id DESC LIMIT 1"))
            .mappings()
            .one()
        )


def _run_counts(engine: Engine, run_id: int) -> dict[str, tuple[str, int, int, int]]:
    """``campaign_id`` → (outcome, rows_inserted, rows_updated, rows_deleted) of one run."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT campaign_id, outcome, rows_inserted, rows_updated, rows_deleted "
                "FROM sync_run_campaigns WHERE run_id = :r"
            ),
            {"r": run_id},
        ).all()
    return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


def test_resync_without_changes_writes_nothing(api: StandIn, db_url: URL, migrated: Engine) -> None:
    served = {
        "00001": [
            _status(str(n), "CALL", n * 10 if n % 2 else None, f"Status {n} ż") for n in range(1, 9)
        ],
        "00002": [_status(n, "TO_CALL", None, f"Inny {n}") for n in range(100, 104)],
    }
    for campaign_id, statuses in served.items():
        api.set_statuses(campaign_id, statuses)
    env = make_env(api, db_url, list(served))
    assert run_cli("sync", env=env).code == 0
    rows_before = {c: stored_statuses(migrated, c) for c in served}
    xmins_before = {c: _xmins(migrated, c) for c in served}
    writes_before = _statuses_writes(migrated)

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    writes_after = _statuses_writes(migrated)
    assert _delta(writes_before, writes_after) == {
        "n_tup_ins": 0,
        "n_tup_upd": 0,
        "n_tup_hot_upd": 0,
        "n_tup_del": 0,
    }
    for campaign_id, statuses in served.items():
        assert _xmins(migrated, campaign_id) == xmins_before[campaign_id]
        rows = stored_statuses(migrated, campaign_id)
        assert rows == rows_before[campaign_id]  # updated_at included
        assert as_api(rows) == canonical(statuses)
    run = _last_run(migrated)
    assert run["outcome"] == "succeeded"
    assert (run["rows_inserted"], run["rows_updated"], run["rows_deleted"]) == (0, 0, 0)
    assert _run_counts(migrated, run["run_id"]) == {
        "00001": ("succeeded", 0, 0, 0),
        "00002": ("succeeded", 0, 0, 0),
    }

    # Control: the same measurement sees a single changed row, so the zeros above mean zero.
    changed = [*served["00001"]]
    changed[2] = {**changed[2], "name": "Przemianowany"}
    api.set_statuses("00001", changed)
    assert run_cli("sync", env=env).code == 0
    control = _delta(writes_after, _statuses_writes(migrated))
    assert control["n_tup_upd"] == 1 and control["n_tup_ins"] == 0 and control["n_tup_del"] == 0
    after_control = _xmins(migrated, "00001")
    assert [s for s in after_control if after_control[s] != xmins_before["00001"][s]] == ["3"]


def _rows_and_xmins(
    engine: Engine, campaign_id: str
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    return stored_statuses(engine, campaign_id), _xmins(engine, campaign_id)


def _payload(row: dict[str, Any]) -> tuple[object, ...]:
    return (row["system_status"], row["dictionary_status_id"], row["name"])


def test_rename_add_delete_and_revive_across_syncs(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    first = [
        _status("1", "TO_CALL", None, "Nowy"),
        _status("2", "CALL", 20, "Dzwonić"),
        _status("3", "NO_CALL", None, "Nie dzwonić"),
        _status("4", "IN_PROGRESS", 40, "Obrabiane"),
        _status("5", "CALL_PROGRESSIVE", 50, "Progresywny"),
        _status("6", "TO_CALL", None, "Zniknie i wróci"),
        _status("7", "CALL", 70, "Stara nazwa"),
    ]
    other = [_status(str(n), "MY_RECORD", n, f"Mój {n}") for n in (11, 12, 13)]
    api.set_statuses("00001", first)
    api.set_statuses("00002", other)
    env = make_env(api, db_url, ["00001", "00002"])
    assert run_cli("sync", env=env).code == 0
    a1, a1_xmin = _rows_and_xmins(migrated, "00001")
    b1 = stored_statuses(migrated, "00002")
    assert sorted(a1) == ["1", "2", "3", "4", "5", "6", "7"] and sorted(b1) == ["11", "12", "13"]

    # Run 2: rename 1, null→int dictionary id on 3, new system_status on 4, drop 6 and 7,
    # add 8 (as an integer id); campaign 00002 answers an empty list.
    second = [
        _status("1", "TO_CALL", None, "Nowy kontakt"),
        first[1],
        _status("3", "NO_CALL", 30, "Nie dzwonić"),
        _status("4", "MY_RECORD", 40, "Obrabiane"),
        first[4],
        _status(8, "CALL_NO_SOONER_THAN", None, "Dodany"),
    ]
    api.set_statuses("00001", second)
    api.set_statuses("00002", [])
    result = run_cli("sync", env=env)
    assert result.code == 0, result.err

    a2, a2_xmin = _rows_and_xmins(migrated, "00001")
    b2, b2_xmin = _rows_and_xmins(migrated, "00002")
    run2 = _last_run(migrated)
    assert _run_counts(migrated, run2["run_id"]) == {
        "00001": ("succeeded", 1, 3, 2),
        "00002": ("succeeded", 0, 0, 3),
    }
    assert (run2["rows_inserted"], run2["rows_updated"], run2["rows_deleted"]) == (1, 3, 5)
    assert as_api(a2) == canonical(second)
    for status_id in ("1", "3", "4"):  # changed: new payload, updated_at moves, born the same
        assert a2[status_id]["updated_at"] > a1[status_id]["updated_at"], status_id
        assert a2[status_id]["first_seen_at"] == a1[status_id]["first_seen_at"], status_id
        assert a2[status_id]["deleted_at"] is None
    assert a2["1"]["name"] == "Nowy kontakt"
    assert a2["3"]["dictionary_status_id"] == 30
    assert a2["4"]["system_status"] == "MY_RECORD"
    for status_id in ("2", "5"):  # unchanged: the very same row version
        assert a2[status_id] == a1[status_id] and a2_xmin[status_id] == a1_xmin[status_id]
    for status_id in ("6", "7"):  # gone from the answer: soft-deleted, data kept
        assert a2[status_id]["deleted_at"] is not None
        assert a2[status_id]["deleted_at"] > a1[status_id]["updated_at"]
        assert _payload(a2[status_id]) == _payload(a1[status_id])
        assert a2[status_id]["first_seen_at"] == a1[status_id]["first_seen_at"]
    assert a2["8"]["deleted_at"] is None
    assert a2["8"]["first_seen_at"] == a2["8"]["updated_at"] > a1["1"]["updated_at"]
    assert as_api(b2) == []  # every status of the emptied campaign is soft-deleted...
    assert as_api(b2, live_only=False) == as_api(b1)  # ...and keeps its data
    assert all(row["deleted_at"] is not None for row in b2.values())

    # Run 3: 6 comes back as it was, 7 comes back renamed and without a dictionary id;
    # 00002 still answers [] (its rows are already deleted: nothing to write).
    third = [*second, first[5], _status("7", "CALL", None, "Nowa nazwa")]
    api.set_statuses("00001", third)
    result = run_cli("sync", env=env)
    assert result.code == 0, result.err

    a3, a3_xmin = _rows_and_xmins(migrated, "00001")
    b3, b3_xmin = _rows_and_xmins(migrated, "00002")
    run3 = _last_run(migrated)
    assert _run_counts(migrated, run3["run_id"]) == {
        "00001": ("succeeded", 0, 2, 0),
        "00002": ("succeeded", 0, 0, 0),
    }
    assert (run3["rows_inserted"], run3["rows_updated"], run3["rows_deleted"]) == (0, 2, 0)
    assert as_api(a3) == canonical(third)
    for status_id in ("6", "7"):  # revived: deleted_at cleared, updated_at moves
        assert a3[status_id]["deleted_at"] is None
        assert a3[status_id]["updated_at"] > a2[status_id]["deleted_at"]
        assert a3[status_id]["first_seen_at"] == a1[status_id]["first_seen_at"]
    assert _payload(a3["6"]) == _payload(a1["6"])
    assert _payload(a3["7"]) == ("CALL", None, "Nowa nazwa")
    for status_id in ("1", "2", "3", "4", "5", "8"):
        assert a3[status_id] == a2[status_id] and a3_xmin[status_id] == a2_xmin[status_id]
    assert b3 == b2 and b3_xmin == b2_xmin  # deleted_at not re-stamped


FAILURES = [
    pytest.param(Fault.status(500), id="http-500"),
    pytest.param(Fault.status(404), id="http-404"),
    pytest.param(Fault.html(502), id="html-502"),
    pytest.param(Fault.invalid_json(), id="invalid-json"),
    pytest.param(Fault.truncated(), id="truncated"),
    pytest.param(Fault.status(200, body='{"result": []}'), id="object-not-array"),
    pytest.param(Fault.status(200, body='[{"status_id": "1"}]'), id="malformed-item"),
]


@pytest.mark.parametrize("fault", FAILURES)
def test_a_failed_fetch_never_marks_anything_deleted(
    fault: Fault, api: StandIn, db_url: URL, migrated: Engine
) -> None:
    api.set_statuses("00001", [_status(str(n), "CALL", None, f"S{n}") for n in range(1, 6)])
    api.set_statuses("00002", [_status("9", "TO_CALL", 1, "Zdrowa")])
    env = make_env(api, db_url, ["00001", "00002"])
    assert run_cli("sync", env=env).code == 0
    rows_before, xmins_before = _rows_and_xmins(migrated, "00001")
    with migrated.connect() as conn:
        synced_before: datetime = conn.execute(
            text("SELECT last_synced_at FROM campaigns WHERE campaign_id = '00001'")
        ).scalar_one()
    api.set_statuses("00002", [_status("9", "TO_CALL", 1, "Zdrowa, przemianowana")])
    api.set_permanent_fault("00001", fault)

    result = run_cli("sync", env=env)

    assert result.code == 1, result.err
    rows_after, xmins_after = _rows_and_xmins(migrated, "00001")
    assert rows_after == rows_before and xmins_after == xmins_before
    assert all(row["deleted_at"] is None for row in rows_after.values())
    run = _last_run(migrated)
    assert run["outcome"] == "partial"
    counts = _run_counts(migrated, run["run_id"])
    assert counts["00001"] == ("failed", 0, 0, 0)
    assert counts["00002"] == ("succeeded", 0, 1, 0)  # the other campaign still synced
    assert stored_statuses(migrated, "00002")["9"]["name"] == "Zdrowa, przemianowana"
    with migrated.connect() as conn:
        campaign = conn.execute(
            text(
                "SELECT last_synced_at, last_attempt_outcome, last_error "
                "FROM campaigns WHERE campaign_id = '00001'"
            )
        ).one()
    assert campaign.last_synced_at == synced_before
    assert campaign.last_attempt_outcome == "failed" and campaign.last_error
