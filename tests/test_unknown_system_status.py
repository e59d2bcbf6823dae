"""A system_status outside Thulium's documented list is stored, recorded as undocumented, and
reported once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import StandIn
from tests.helpers.cli import make_env, run_cli
from tests.helpers.data import as_api, canonical, stored_statuses

# shared/THULIUM_API.md: value → (Polish description from the docs, English).
DOCUMENTED = {
    "TO_CALL": ("Do dzwonienia (świeżo dodane rekordy)", "To call (newly added records)"),
    "IN_PROGRESS": ("Obrabiane", "In progress"),
    "CALL": ("Dzwonić", "Call"),
    "MY_RECORD": ("Mój rekord", "My record (assigned to one agent)"),
    "NO_CALL": ("Nie dzwonić", "Do not call"),
    "ABANDONED_AFTER_N_TRIES": ("Odrzucony po n próbach", "Abandoned after N attempts"),
    "CALL_NO_SOONER_THAN": ("Kontakt nie wcześniej niż", "Call no sooner than a set time"),
    "CALL_PROGRESSIVE": (
        "Dzwonić w trybie progressive (np. dla spadów w trybie predictive)",
        "Call in progressive mode (e.g. calls dropped in predictive mode)",
    ),
}
UNKNOWN = "NEW_FEATURE_X"


def _system_statuses(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM system_statuses")).mappings()
        return {row["code"]: dict(row) for row in rows}


def _warnings_about(events: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [e for e in events if e["level"] == "warning" and code in e["message"]]


def test_unknown_system_status_is_stored_and_reported_once(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    served: list[dict[str, object]] = [
        {"status_id": "1", "system_status": "CALL", "dictionary_status_id": None, "name": "Znany"},
        {"status_id": "2", "system_status": UNKNOWN, "dictionary_status_id": 7, "name": "Nowość"},
        {"status_id": "3", "system_status": UNKNOWN, "dictionary_status_id": None, "name": "Też"},
    ]
    api.set_statuses("00001", served)
    api.set_statuses("00002", [{**served[1], "status_id": "20"}])  # same code, other campaign
    env = make_env(api, db_url, ["00001", "00002"])
    assert sorted(_system_statuses(migrated)) == sorted(DOCUMENTED)  # nothing extra before a sync

    first = run_cli("sync", env=env)

    assert first.code == 0, first.err
    assert as_api(stored_statuses(migrated, "00001")) == canonical(served)
    assert as_api(stored_statuses(migrated, "00002")) == canonical(
        [{**served[1], "status_id": "20"}]
    )
    lookup = _system_statuses(migrated)
    assert sorted(lookup) == sorted([*DOCUMENTED, UNKNOWN])
    for code, (polish, english) in DOCUMENTED.items():
        row = lookup[code]
        assert (row["documented"], row["description_pl"], row["description_en"]) == (
            True,
            polish,
            english,
        ), code
    new = lookup[UNKNOWN]
    assert new["documented"] is False and new["first_seen_at"] is not None
    assert len(_warnings_about(first.events(), UNKNOWN)) == 1
    with migrated.connect() as conn:
        run = conn.execute(
            text("SELECT outcome, rows_inserted FROM sync_runs ORDER BY run_id DESC LIMIT 1")
        ).one()
    assert (run.outcome, run.rows_inserted) == ("succeeded", 4)

    api.set_statuses("00001", [*served, {**served[2], "status_id": "4", "name": "Kolejny"}])
    second = run_cli("sync", env=env)

    assert second.code == 0, second.err
    assert _warnings_about(second.events(), UNKNOWN) == []
    assert _system_statuses(migrated) == lookup  # first_seen_at of the new code kept
    assert stored_statuses(migrated, "00001")["4"]["system_status"] == UNKNOWN


def test_an_unknown_code_is_reported_only_when_its_write_commits(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    """The campaign that brings it is refused (a DBA's CHECK on names): nothing is stored,
    and nothing is said to have been added."""
    with migrated.begin() as conn:
        conn.execute(
            text("ALTER TABLE statuses ADD CONSTRAINT dba_short_names CHECK (name <> 'X')")
        )
    try:
        api.set_statuses(
            "00001",
            [
                {
                    "status_id": "1",
                    "system_status": UNKNOWN,
                    "dictionary_status_id": None,
                    "name": "X",
                }
            ],
        )
        result = run_cli("sync", env=make_env(api, db_url, ["00001"]))
    finally:
        with migrated.begin() as conn:
            conn.execute(text("ALTER TABLE statuses DROP CONSTRAINT dba_short_names"))

    assert result.code == 1, result.err
    assert UNKNOWN not in _system_statuses(migrated)
    assert _warnings_about(result.events(), UNKNOWN) == []
