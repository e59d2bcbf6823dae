"""A database whose encoding is not UTF-8 (LATIN2, as Polish installations often have, or
SQL_ASCII) works like a UTF-8 one: the job always talks UTF-8 to it, the server converts, a
status it cannot hold fails its campaign alone, and the characters of an error message it
cannot hold are recorded escaped."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL

from etl import migrate
from standin import Fault, StandIn
from tests.helpers.cli import make_env, run_cli
from tests.helpers.data import seed_campaigns, status, stored_statuses
from tests.helpers.databases import fresh_database
from tests.helpers.history import assert_history_matches
from tests.helpers.snapshots import assert_totals_add_up

IDS = ["00001", "00002", "00003"]
POLISH = "Zażółć gęślą jaźń"


@contextlib.contextmanager
def database_in(pg_server: URL, encoding: str) -> Iterator[Engine]:
    """A database in ``encoding``, never migrated; the engine reads it in UTF-8."""
    with fresh_database(pg_server, label=encoding, encoding=encoding) as url:
        engine = create_engine(url, connect_args={"client_encoding": "utf8"})
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture(params=["LATIN2", "SQL_ASCII"])
def encoded(pg_server: URL, request: pytest.FixtureRequest) -> Iterator[Engine]:
    with database_in(pg_server, request.param) as engine:
        yield engine


@pytest.fixture
def latin2(pg_server: URL) -> Iterator[Engine]:
    with database_in(pg_server, "LATIN2") as engine:
        migrate.upgrade(engine)
        yield engine


def test_a_non_utf8_database_is_migrated_and_synced_like_any_other(
    api: StandIn, encoded: Engine
) -> None:
    seed_campaigns(api, IDS)
    api.set_statuses("00001", [status("1", "NEW", None, POLISH)])
    env = make_env(api, encoded.url, IDS)

    results = [run_cli(command, env=env) for command in ("migrate", "sync", "runs")]

    assert [r.code for r in results] == [0, 0, 0], [r.err for r in results]
    assert [row["name"] for row in stored_statuses(encoded, "00001").values()] == [POLISH]
    assert_history_matches(encoded)


def test_a_status_latin2_cannot_hold_fails_its_campaign_alone(api: StandIn, latin2: Engine) -> None:
    seed_campaigns(api, IDS)
    api.set_statuses("00002", [status("1", "NEW", None, "Cena 5 €")])  # no euro sign in LATIN2

    result = run_cli("sync", env=make_env(api, latin2.url, IDS))

    assert result.code == 1, result.err
    with latin2.connect() as conn:
        rows = conn.execute(text("SELECT campaign_id, outcome FROM sync_run_campaigns")).all()
    outcomes = {campaign_id: outcome for campaign_id, outcome in rows}
    assert outcomes == {"00001": "succeeded", "00002": "failed", "00003": "succeeded"}
    assert stored_statuses(latin2, "00002") == {}
    assert_totals_add_up(latin2)
    assert_history_matches(latin2)


def test_an_error_message_latin2_cannot_hold_is_recorded_escaped(
    api: StandIn, latin2: Engine
) -> None:
    seed_campaigns(api, IDS[:2])
    body = {"request_id": "r-1", "errors": [{"message": "Ошибка сервера", "code": 9}]}
    api.add_faults("00003", Fault.status(400, body=json.dumps(body)))

    result = run_cli("sync", env=make_env(api, latin2.url, IDS))

    assert result.code == 1, result.err
    with latin2.connect() as conn:
        run = conn.execute(text("SELECT outcome, error FROM sync_runs")).one()
        error = conn.execute(
            text("SELECT error FROM sync_run_campaigns WHERE campaign_id = '00003'")
        ).scalar_one()
    assert run.outcome == "partial"
    assert "\\u041e\\u0448\\u0438\\u0431\\u043a\\u0430" in error  # Ошибка, escaped
    assert "\\u041e" in run.error
    assert_totals_add_up(latin2)


def test_only_what_latin2_cannot_hold_is_escaped_even_in_a_message_cut_to_the_limit(
    api: StandIn, latin2: Engine
) -> None:
    """Polish letters are LATIN2's own and stay as they are; a message escaped past the
    history's 2,000 characters is cut between two escapes, and marked with what LATIN2 holds
    (``...``: it has no ``…``)."""
    seed_campaigns(api, IDS[:2])
    body = {"errors": [{"message": "Błąd serwera: " + "Ошибка сервера " * 60, "code": 9}]}
    api.add_faults("00003", Fault.status(400, body=json.dumps(body)))

    result = run_cli("sync", env=make_env(api, latin2.url, IDS))

    assert result.code == 1, result.err
    with latin2.connect() as conn:
        error = conn.execute(
            text("SELECT error FROM sync_run_campaigns WHERE campaign_id = '00003'")
        ).scalar_one()
    assert "Błąd serwera: \\u041e\\u0448\\u0438\\u0431\\u043a\\u0430" in error
    assert len(error) <= 2000
    assert re.search(r"(\\u[0-9a-f]{4}| )\.\.\.$", error), error[-20:]  # a whole escape, then ...
    assert_totals_add_up(latin2)


def test_a_request_id_longer_than_the_history_keeps_fails_its_campaign_alone_in_latin2(
    api: StandIn, latin2: Engine
) -> None:
    """Cut to 200 characters: the mark of the cut must be one LATIN2 holds."""
    seed_campaigns(api, IDS[:2])
    body = {"errors": [{"message": "nope", "code": 9}], "request_id": "r" * 250}
    api.add_faults("00003", Fault.status(400, body=json.dumps(body)))

    result = run_cli("sync", env=make_env(api, latin2.url, IDS))

    assert result.code == 1, result.err
    with latin2.connect() as conn:
        request_id = conn.execute(
            text("SELECT request_id FROM sync_run_campaigns WHERE campaign_id = '00003'")
        ).scalar_one()
    assert request_id == "r" * 197 + "..."
    assert_totals_add_up(latin2)
