"""``thulium-etl runs`` shows the recorded history (runs, or one run's campaigns), table or JSON."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import StandIn
from tests.helpers.cli import make_env, run_cli, spawn_cli
from tests.helpers.data import seed_campaigns

OK1, OK2, GONE = "00001", "00002", "00404"
IDS = [OK1, OK2, GONE]
N = 4


def partial_run(api: StandIn, env: dict[str, str]) -> None:
    """Two campaigns synced, one unknown to the API (404)."""
    seed_campaigns(api, [OK1, OK2], n=N)
    result = run_cli("sync", env=env)
    assert result.code == 1, result.err


def db_runs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM sync_runs ORDER BY run_id DESC")).mappings()
        return [dict(row) for row in rows]


def table(out: str) -> list[dict[str, str]]:
    """Parse the aligned table: each column starts where its header starts."""
    header, *lines = out.rstrip("\n").splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    bounds = [*starts[1:], None]
    columns = list(zip(names, starts, bounds, strict=True))
    return [{name: line[start:end].strip() for name, start, end in columns} for line in lines]


def test_runs_shows_a_partial_run_with_its_counts(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    env = make_env(api, db_url, IDS)
    partial_run(api, env)
    [stored] = db_runs(migrated)

    result = run_cli("runs", env=env)

    assert result.code == 0, result.err
    [row] = table(result.out)
    assert row["run_id"] == str(stored["run_id"])
    assert row["outcome"] == "partial"
    assert (
        row["campaigns_total"],
        row["campaigns_ok"],
        row["campaigns_failed"],
        row["campaigns_skipped"],
    ) == ("3", "2", "1", "0")
    assert (row["rows_inserted"], row["rows_updated"], row["rows_deleted"]) == (
        str(2 * N),
        "0",
        "0",
    )
    assert GONE in row["error"] and "404" in row["error"]
    assert row["started_at"] == stored["started_at"].strftime("%Y-%m-%d %H:%M:%S")


def test_runs_json_gives_the_recorded_fields(api: StandIn, db_url: URL, migrated: Engine) -> None:
    env = make_env(api, db_url, IDS)
    partial_run(api, env)
    [stored] = db_runs(migrated)

    result = run_cli("runs", "--json", env=env)

    assert result.code == 0, result.err
    [shown] = json.loads(result.out)
    assert shown["outcome"] == "partial"
    assert (
        shown["campaigns_total"],
        shown["campaigns_ok"],
        shown["campaigns_failed"],
        shown["campaigns_skipped"],
        shown["rows_inserted"],
    ) == (3, 2, 1, 0, 2 * N)
    for key in ("started_at", "finished_at"):
        assert datetime.fromisoformat(shown[key]) == stored[key]
    assert {k: v for k, v in shown.items() if k not in ("started_at", "finished_at")} == {
        k: v for k, v in stored.items() if k not in ("started_at", "finished_at")
    }


def test_runs_for_one_run_lists_each_campaign_and_the_error(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    env = make_env(api, db_url, IDS)
    partial_run(api, env)
    [stored] = db_runs(migrated)
    run_id = str(stored["run_id"])

    as_table = run_cli("runs", "--run", run_id, env=env)
    as_json = run_cli("runs", "--run", run_id, "--json", env=env)

    assert (as_table.code, as_json.code) == (0, 0), as_table.err + as_json.err
    rows = {row["campaign_id"]: row for row in table(as_table.out)}
    assert {c: r["outcome"] for c, r in rows.items()} == {
        OK1: "succeeded",
        OK2: "succeeded",
        GONE: "failed",
    }
    assert rows[OK1]["rows_inserted"] == str(N) and rows[OK1]["error"] == "-"
    assert rows[GONE]["http_status"] == "404"
    assert "HTTP 404" in rows[GONE]["error"]
    shown = {row["campaign_id"]: row for row in json.loads(as_json.out)}
    assert shown[GONE]["outcome"] == "failed" and shown[GONE]["http_status"] == 404
    assert "HTTP 404" in shown[GONE]["error"]
    assert shown[OK2]["error"] is None and shown[OK2]["rows_inserted"] == N
    assert {r["run_id"] for r in shown.values()} == {stored["run_id"]}


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_an_unknown_run_is_a_clear_error(
    api: StandIn, db_url: URL, migrated: Engine, extra: list[str]
) -> None:
    env = make_env(api, db_url, IDS)
    partial_run(api, env)

    result = run_cli("runs", "--run", "999999", *extra, env=env)

    assert result.code == 2
    assert result.out == ""
    [line] = result.err.splitlines()
    event = json.loads(line)
    assert event["level"] == "error"
    assert "--run 999999" in event["message"] and "no such run" in event["message"]


def test_limit_shows_only_the_newest_runs(api: StandIn, db_url: URL, migrated: Engine) -> None:
    env = make_env(api, db_url, IDS)
    partial_run(api, env)
    api.remove(OK2)
    assert run_cli("sync", env=env).code == 1
    newest, oldest = db_runs(migrated)

    limited = run_cli("runs", "--limit", "1", env=env)
    limited_json = run_cli("runs", "--limit", "1", "--json", env=env)
    everything = run_cli("runs", env=env)

    assert [row["run_id"] for row in table(limited.out)] == [str(newest["run_id"])]
    assert [row["run_id"] for row in json.loads(limited_json.out)] == [newest["run_id"]]
    assert [row["run_id"] for row in table(everything.out)] == [
        str(newest["run_id"]),
        str(oldest["run_id"]),
    ]
    assert table(limited.out)[0]["campaigns_failed"] == "2"


def test_an_empty_history_says_so(api: StandIn, db_url: URL, migrated: Engine) -> None:
    env = make_env(api, db_url, IDS)

    as_text = run_cli("runs", env=env)
    as_json = run_cli("runs", "--json", env=env)

    assert (as_text.code, as_json.code) == (0, 0)
    assert as_text.out.strip() == "no runs recorded yet"
    assert json.loads(as_json.out) == []


def test_runs_on_an_unmigrated_database_exits_3(api: StandIn, empty_database: Engine) -> None:
    result = run_cli("runs", env=make_env(api, empty_database.url, IDS))

    assert result.code == 3
    assert "migrate" in result.err
    assert result.out == ""


def _runs_into(stdout: int, env: dict[str, str]) -> tuple[int, str]:
    proc = spawn_cli("runs", "--json", env=env, stdout=stdout)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_output_to_a_closed_pipe_exits_74_quietly(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    """``thulium-etl runs | head`` with a reader that is already gone."""
    env = make_env(api, db_url, IDS)
    partial_run(api, env)
    read, write = os.pipe()
    os.close(read)
    try:
        code, err = _runs_into(write, env)
    finally:
        os.close(write)

    assert code == 74
    assert "Traceback" not in err and "Exception ignored" not in err
    assert [line for line in err.splitlines() if '"level": "error"' in line] == []


def test_output_to_a_full_disk_exits_74_with_one_line(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    env = make_env(api, db_url, IDS)
    partial_run(api, env)
    with open("/dev/full", "w") as full:
        code, err = _runs_into(full.fileno(), env)

    assert code == 74
    assert "Traceback" not in err and "Exception ignored" not in err
    [line] = err.splitlines()
    assert json.loads(line)["level"] == "error" and "No space left" in line
