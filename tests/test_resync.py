"""Re-syncs write only what changed: renames, additions, soft deletes and revivals, exactly counted.

Each kind of change has a test of its own: a campaign is served an answer and synced, then
served the next one and synced again. Rows are read with their ``xmin`` (any UPDATE, even one
writing the same values, gives the row a new version with a new ``xmin``), so a row equal to
an earlier one is the very same row version; a status served unchanged beside the change
shows that only the changed rows were written.

For a re-sync without any change, "untouched" is checked three ways: each row's ``xmin``,
``updated_at``, and the server's own write counters for ``statuses``
(``pg_stat_user_tables``). Those counters are flushed by each backend at exit (before it
leaves ``pg_stat_activity``), so they are read after every connection of the CLI has gone;
``pg_stat_force_next_flush()`` would only flush the calling backend, not the job's. The
counters are proven sensitive by a control step that changes one row and must see exactly
one update.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import Fault, StandIn
from tests.helpers.cli import make_env, run_cli
from tests.helpers.data import Rows, Statuses, as_api, canonical, rows_with_xmin, stored_statuses


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


def _sync(
    api: StandIn, db_url: URL, engine: Engine, served: dict[str, Statuses]
) -> dict[str, Rows]:
    """Serve ``served`` (campaign id → its statuses), run a sync that must succeed, and return
    each campaign's stored rows, deleted ones included, each with its ``xmin``: a row equal to
    an earlier one is the very same row version, untouched."""
    for campaign_id, statuses in served.items():
        api.set_statuses(campaign_id, statuses)
    result = run_cli("sync", env=make_env(api, db_url, list(served)))
    assert result.code == 0, result.err
    return {campaign_id: rows_with_xmin(engine, campaign_id) for campaign_id in served}


def _counts(engine: Engine) -> tuple[dict[str, tuple[str, int, int, int]], tuple[int, int, int]]:
    """The newest run's (outcome, inserted, updated, deleted) per campaign, and its totals."""
    run = _last_run(engine)
    totals = (run["rows_inserted"], run["rows_updated"], run["rows_deleted"])
    return _run_counts(engine, run["run_id"]), totals


def _assert_updated(before: dict[str, Any], after: dict[str, Any]) -> None:
    """A changed status: a new row version whose updated_at moved; born the same, still live."""
    assert after["xmin"] != before["xmin"]
    assert after["updated_at"] > before["updated_at"]
    assert after["first_seen_at"] == before["first_seen_at"]
    assert after["deleted_at"] is None


def _assert_revived(first: dict[str, Any], gone: dict[str, Any], back: dict[str, Any]) -> None:
    """A status seen (``first``), soft-deleted (``gone``) and served again (``back``)."""
    assert back["deleted_at"] is None
    assert back["updated_at"] > gone["deleted_at"]
    assert back["first_seen_at"] == first["first_seen_at"]


# Campaign 00001's statuses as first served: one of each kind the tests below change.
FIRST = [
    _status("1", "TO_CALL", None, "Nowy"),
    _status("2", "CALL", 20, "Dzwonić"),
    _status("3", "NO_CALL", None, "Nie dzwonić"),
    _status("4", "IN_PROGRESS", 40, "Obrabiane"),
    _status("5", "CALL_PROGRESSIVE", 50, "Progresywny"),
    _status("6", "TO_CALL", None, "Zniknie i wróci"),
    _status("7", "CALL", 70, "Stara nazwa"),
]
KEPT = FIRST[1]  # served every time, unchanged: its row must never be rewritten
OTHER = [_status(str(n), "MY_RECORD", n, f"Mój {n}") for n in (11, 12, 13)]  # campaign 00002
RENAMED = _status("1", "TO_CALL", None, "Nowy kontakt")
GIVEN_A_DICTIONARY_ID = _status("3", "NO_CALL", 30, "Nie dzwonić")
GIVEN_ANOTHER_SYSTEM_STATUS = _status("4", "MY_RECORD", 40, "Obrabiane")
ADDED = _status(8, "CALL_NO_SOONER_THAN", None, "Dodany")  # an integer id, stored as "8"
BACK_RENAMED = _status("7", "CALL", None, "Nowa nazwa")  # 7 again, renamed, no dictionary id
# The later answers of 00001 when every kind of change happens at once: the second renames 1,
# gives 3 a dictionary id, 4 another system_status, drops 6 and 7 and adds 8; in the third,
# 6 comes back as it was and 7 renamed. Meanwhile 00002 answers an empty list, twice.
SECOND = [RENAMED, KEPT, GIVEN_A_DICTIONARY_ID, GIVEN_ANOTHER_SYSTEM_STATUS, FIRST[4], ADDED]
THIRD = [*SECOND, FIRST[5], BACK_RENAMED]


def test_a_rename_updates_the_row_and_moves_updated_at_but_not_first_seen_at(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    before = _sync(api, db_url, migrated, {"00001": [FIRST[0], KEPT]})["00001"]

    after = _sync(api, db_url, migrated, {"00001": [RENAMED, KEPT]})["00001"]

    assert as_api(after) == canonical([RENAMED, KEPT])
    assert after["1"]["name"] == "Nowy kontakt"
    _assert_updated(before["1"], after["1"])
    assert after["2"] == before["2"]
    assert _counts(migrated) == ({"00001": ("succeeded", 0, 1, 0)}, (0, 1, 0))


def test_a_dictionary_status_id_going_from_null_to_a_number_is_an_update(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    before = _sync(api, db_url, migrated, {"00001": [FIRST[2], KEPT]})["00001"]

    after = _sync(api, db_url, migrated, {"00001": [GIVEN_A_DICTIONARY_ID, KEPT]})["00001"]

    assert as_api(after) == canonical([GIVEN_A_DICTIONARY_ID, KEPT])
    assert after["3"]["dictionary_status_id"] == 30
    _assert_updated(before["3"], after["3"])
    assert after["2"] == before["2"]
    assert _counts(migrated) == ({"00001": ("succeeded", 0, 1, 0)}, (0, 1, 0))


def test_a_changed_system_status_is_an_update(api: StandIn, db_url: URL, migrated: Engine) -> None:
    before = _sync(api, db_url, migrated, {"00001": [FIRST[3], KEPT]})["00001"]

    after = _sync(api, db_url, migrated, {"00001": [GIVEN_ANOTHER_SYSTEM_STATUS, KEPT]})["00001"]

    assert as_api(after) == canonical([GIVEN_ANOTHER_SYSTEM_STATUS, KEPT])
    assert after["4"]["system_status"] == "MY_RECORD"
    _assert_updated(before["4"], after["4"])
    assert after["2"] == before["2"]
    assert _counts(migrated) == ({"00001": ("succeeded", 0, 1, 0)}, (0, 1, 0))


def test_a_status_gone_from_the_answer_is_soft_deleted_and_keeps_its_data(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    before = _sync(api, db_url, migrated, {"00001": [KEPT, FIRST[5], FIRST[6]]})["00001"]

    after = _sync(api, db_url, migrated, {"00001": [KEPT]})["00001"]

    assert as_api(after) == canonical([KEPT])
    for status_id in ("6", "7"):
        assert after[status_id]["deleted_at"] is not None
        assert after[status_id]["deleted_at"] > before[status_id]["updated_at"]
        assert _payload(after[status_id]) == _payload(before[status_id])
        assert after[status_id]["first_seen_at"] == before[status_id]["first_seen_at"]
    assert after["2"] == before["2"]
    assert _counts(migrated) == ({"00001": ("succeeded", 0, 0, 2)}, (0, 0, 2))


def test_a_campaign_answering_an_empty_list_soft_deletes_every_status_and_keeps_their_data(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    before = _sync(api, db_url, migrated, {"00002": OTHER})["00002"]

    after = _sync(api, db_url, migrated, {"00002": []})["00002"]

    assert as_api(after) == []
    assert as_api(after, live_only=False) == as_api(before)
    assert all(row["deleted_at"] is not None for row in after.values())
    assert _counts(migrated) == ({"00002": ("succeeded", 0, 0, 3)}, (0, 0, 3))


def test_the_rows_of_an_emptied_campaign_are_not_stamped_again_by_the_next_sync(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    _sync(api, db_url, migrated, {"00002": OTHER})
    emptied = _sync(api, db_url, migrated, {"00002": []})["00002"]

    again = _sync(api, db_url, migrated, {"00002": []})["00002"]

    assert again == emptied  # deleted_at not re-stamped: the very same row versions
    assert _counts(migrated) == ({"00002": ("succeeded", 0, 0, 0)}, (0, 0, 0))


def test_a_status_that_comes_back_is_revived_as_it_was(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    first = _sync(api, db_url, migrated, {"00001": [KEPT, FIRST[5]]})["00001"]
    gone = _sync(api, db_url, migrated, {"00001": [KEPT]})["00001"]

    back = _sync(api, db_url, migrated, {"00001": [KEPT, FIRST[5]]})["00001"]

    assert as_api(back) == canonical([KEPT, FIRST[5]])
    _assert_revived(first["6"], gone["6"], back["6"])
    assert _payload(back["6"]) == _payload(first["6"])
    assert back["2"] == first["2"]
    assert _counts(migrated) == ({"00001": ("succeeded", 0, 1, 0)}, (0, 1, 0))


def test_a_status_that_comes_back_renamed_is_revived_with_its_new_data(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    first = _sync(api, db_url, migrated, {"00001": [KEPT, FIRST[6]]})["00001"]
    gone = _sync(api, db_url, migrated, {"00001": [KEPT]})["00001"]

    back = _sync(api, db_url, migrated, {"00001": [KEPT, BACK_RENAMED]})["00001"]

    assert as_api(back) == canonical([KEPT, BACK_RENAMED])
    _assert_revived(first["7"], gone["7"], back["7"])
    assert _payload(back["7"]) == ("CALL", None, "Nowa nazwa")
    assert back["2"] == first["2"]
    assert _counts(migrated) == ({"00001": ("succeeded", 0, 1, 0)}, (0, 1, 0))


def test_a_new_status_is_inserted_and_its_integer_id_stored_as_text(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    before = _sync(api, db_url, migrated, {"00001": [KEPT]})["00001"]

    after = _sync(api, db_url, migrated, {"00001": [KEPT, ADDED]})["00001"]

    assert as_api(after) == canonical([KEPT, ADDED])
    assert after["8"]["deleted_at"] is None
    assert after["8"]["first_seen_at"] == after["8"]["updated_at"] > before["2"]["updated_at"]
    assert after["2"] == before["2"]
    assert _counts(migrated) == ({"00001": ("succeeded", 1, 0, 0)}, (1, 0, 0))


def test_unchanged_rows_keep_their_row_version_while_every_kind_of_change_happens_around_them(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    first = _sync(api, db_url, migrated, {"00001": FIRST, "00002": OTHER})

    second = _sync(api, db_url, migrated, {"00001": SECOND, "00002": []})
    third = _sync(api, db_url, migrated, {"00001": THIRD, "00002": []})

    assert sorted(first["00001"]) == ["1", "2", "3", "4", "5", "6", "7"]
    assert sorted(first["00002"]) == ["11", "12", "13"]
    assert as_api(second["00001"]) == canonical(SECOND)
    assert as_api(third["00001"]) == canonical(THIRD)
    for status_id in ("2", "5"):  # served unchanged the second time
        assert second["00001"][status_id] == first["00001"][status_id], status_id
    for status_id in ("1", "2", "3", "4", "5", "8"):  # served unchanged the third time
        assert third["00001"][status_id] == second["00001"][status_id], status_id


def test_each_run_counts_exactly_the_rows_it_inserted_updated_and_deleted_per_campaign(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    _sync(api, db_url, migrated, {"00001": FIRST, "00002": OTHER})

    _sync(api, db_url, migrated, {"00001": SECOND, "00002": []})
    second = _counts(migrated)
    _sync(api, db_url, migrated, {"00001": THIRD, "00002": []})
    third = _counts(migrated)

    assert second == (
        {"00001": ("succeeded", 1, 3, 2), "00002": ("succeeded", 0, 0, 3)},
        (1, 3, 5),
    )
    assert third == (
        {"00001": ("succeeded", 0, 2, 0), "00002": ("succeeded", 0, 0, 0)},
        (0, 2, 0),
    )


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
