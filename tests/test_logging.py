"""Log lines are JSON objects or human text, as asked; JSON events carry run and campaign ids.

The format comes from ``--log-format``, else ``THULIUM_LOG_FORMAT``, else the terminal test:
text when stderr is a TTY, JSON when it is a pipe or file (a scheduler, a container).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import Fault, StandIn
from tests.helpers.cli import make_env, run_cli, run_in_terminal, screen, spawn_cli
from tests.helpers.data import as_api, canonical, seed_campaigns, stored_statuses

OK, FLAKY, GONE = "00001", "00002", "00404"
IDS = [OK, FLAKY, GONE]
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S")
ABOUT_A_CAMPAIGN = re.compile(r"^campaign ([0-9A-Za-z]{5})\b")
ROOT = Path(__file__).resolve().parent.parent


def serve(api: StandIn) -> dict[str, list[dict[str, object]]]:
    """One campaign fine, one failing once with a 500 (a retry), one that does not exist."""
    served = seed_campaigns(api, [OK, FLAKY], n=3)
    api.add_faults(FLAKY, Fault.status(500))
    return served


def json_events(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line parsed as a JSON object; fails on any line that is not one."""
    lines = stderr.splitlines()
    assert lines, "nothing was logged"
    events = []
    for line in lines:
        event = json.loads(line)
        assert isinstance(event, dict), line
        assert {"time", "level", "logger", "message"} <= event.keys(), line
        events.append(event)
    return events


def assert_text_lines(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    assert lines, "nothing was logged"
    for line in lines:
        assert TEXT_LINE.match(line), line
        assert not line.lstrip().startswith("{"), line
    return lines


def only_run_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT run_id FROM sync_runs")).scalar_one())


def assert_synced(engine: Engine, served: dict[str, list[dict[str, object]]]) -> None:
    for campaign_id, statuses in served.items():
        assert as_api(stored_statuses(engine, campaign_id)) == canonical(statuses)
    with engine.connect() as conn:
        outcomes: dict[str, str] = dict(
            conn.execute(text("SELECT campaign_id, outcome FROM sync_run_campaigns")).all()
        )
    assert outcomes == {OK: "succeeded", FLAKY: "succeeded", GONE: "failed"}


def test_json_format_gives_one_object_per_line_with_run_and_campaign_ids(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    served = serve(api)
    env = make_env(api, db_url, IDS, THULIUM_LOG_FORMAT="json")

    result = run_cli("--log-format", "json", "sync", env=env)

    assert result.code == 1, result.err
    assert_synced(migrated, served)
    run_id = only_run_id(migrated)
    events = json_events(result.err)
    outcomes = {e["campaign_id"]: e for e in events if "outcome" in e and "campaign_id" in e}
    assert set(outcomes) == set(IDS)
    assert all(e["run_id"] == run_id for e in outcomes.values())
    assert outcomes[OK]["outcome"] == outcomes[FLAKY]["outcome"] == "succeeded"
    assert (outcomes[GONE]["outcome"], outcomes[GONE]["level"]) == ("failed", "error")
    assert "404" in outcomes[GONE]["message"]
    summary = events[-1]
    assert (summary["run_id"], summary["outcome"], summary["level"]) == (run_id, "partial", "error")
    started = [e for e in events if e["message"].startswith(f"run {run_id} started")]
    assert len(started) == 1 and started[0]["run_id"] == run_id


def test_every_event_about_a_campaign_carries_its_campaign_and_run_ids(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    """Retry warnings too: ops filter a night's logs by campaign_id and run_id."""
    serve(api)
    env = make_env(api, db_url, IDS)

    result = run_cli("sync", env=env)

    assert result.code == 1, result.err
    assert api.requests_for(FLAKY) == 2
    run_id = only_run_id(migrated)
    about = [
        (m.group(1), e)
        for e in json_events(result.err)
        if (m := ABOUT_A_CAMPAIGN.match(e["message"]))
    ]
    retries = [e for _, e in about if "retrying" in e["message"]]
    assert len(retries) == 1, about  # the 500 on FLAKY
    for campaign_id, event in about:
        assert event.get("campaign_id") == campaign_id, event
        assert event.get("run_id") == run_id, event


@pytest.mark.parametrize(
    ("flag", "variable"),
    [("text", None), ("text", "json"), (None, "text"), (None, "TEXT")],
    ids=["flag", "flag-over-variable", "variable", "variable-any-case"],
)
def test_text_format_gives_human_lines(
    api: StandIn, db_url: URL, migrated: Engine, flag: str | None, variable: str | None
) -> None:
    served = serve(api)
    env = make_env(api, db_url, IDS)
    del env["THULIUM_LOG_FORMAT"]
    if variable is not None:
        env["THULIUM_LOG_FORMAT"] = variable
    argv = ["--log-format", flag, "sync"] if flag else ["sync"]

    result = run_cli(*argv, env=env)

    assert result.code == 1
    assert_synced(migrated, served)
    lines = assert_text_lines(result.err)
    run_id = only_run_id(migrated)
    assert any(f"campaign {OK} synced" in line and " INFO " in line for line in lines)
    assert any(f"campaign {GONE} failed" in line and " ERROR " in line for line in lines)
    assert f"run {run_id} partial" in lines[-1]


@pytest.mark.parametrize("variable", ["text", "json", "Json"])
def test_the_json_flag_wins_over_the_variable(
    api: StandIn, db_url: URL, migrated: Engine, variable: str
) -> None:
    served = serve(api)
    env = make_env(api, db_url, IDS, THULIUM_LOG_FORMAT=variable)

    result = run_cli("--log-format", "json", "sync", env=env)

    assert result.code == 1
    assert_synced(migrated, served)
    assert json_events(result.err)[-1]["run_id"] == only_run_id(migrated)


def test_json_is_the_default_when_stderr_is_not_a_terminal(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    served = serve(api)
    env = make_env(api, db_url, IDS)
    del env["THULIUM_LOG_FORMAT"]

    proc = spawn_cli("sync", env=env)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 1, err
    assert out == ""
    assert_synced(migrated, served)
    events = json_events(err)
    assert events[-1]["run_id"] == only_run_id(migrated)


def test_text_is_the_default_when_stderr_is_a_terminal(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    served = serve(api)
    env = make_env(api, db_url, IDS)
    del env["THULIUM_LOG_FORMAT"]

    code, written = run_in_terminal("sync", env=env)

    assert code == 1
    assert_synced(migrated, served)
    lines = screen(written)  # what the terminal shows once the progress line is gone
    assert_text_lines("\n".join(lines))
    assert f"run {only_run_id(migrated)} partial" in lines[-1]


def test_log_level_warning_hides_the_info_events(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    served = serve(api)
    env = make_env(api, db_url, IDS, THULIUM_LOG_LEVEL="warning")

    result = run_cli("sync", env=env)

    assert result.code == 1
    assert_synced(migrated, served)
    levels = {e["level"] for e in json_events(result.err)}
    assert "info" not in levels
    assert "error" in levels
