"""On a terminal, ``sync`` keeps a progress line under its logs; nowhere else does it.

The line says how many campaigns are done of how many, how many failed, the rate and the
time left, and is rewritten in place (carriage return, erase line). A pipe, cron or JSON logs
get no progress line at all: nothing there could rewrite a line.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from standin import StandIn
from tests.helpers.cli import ERASE_LINE, make_env, run_in_terminal, screen, spawn_cli
from tests.helpers.data import seed_campaigns

IDS = [f"{n:05d}" for n in range(1, 11)] + ["00404"]  # the last one is unknown to the API
PROGRESS = re.compile(r"(\d+)/11 campaigns(?:, (\d+) failed)?, \d+\.\d/s, ETA (?:\d+s|\?)")


def _environment(api: StandIn, db_url: URL, **settings: str) -> dict[str, str]:
    seed_campaigns(api, IDS[:-1])
    api.latency = 0.05  # at concurrency 2, a second or so: several updates of the line
    env = make_env(api, db_url, IDS, THULIUM_CONCURRENCY="2")
    del env["THULIUM_LOG_FORMAT"]  # the default: text on a terminal, JSON elsewhere
    return {**env, **settings}


def test_on_a_terminal_the_progress_line_counts_up_in_place_and_is_gone_at_the_end(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    code, written = run_in_terminal("sync", env=_environment(api, db_url))

    assert code == 1
    text = written.decode("utf-8")
    shown = [m for m in PROGRESS.finditer(text)]
    assert len(shown) >= 3, text
    done = [int(m[1]) for m in shown]
    assert done == sorted(done) and done[-1] == 11
    assert shown[-1][2] == "1"  # the unknown campaign, counted as failed
    # each drawn over the line before, or on the fresh line under a log line just written
    for m in shown:
        assert text[: m.start()].endswith((ERASE_LINE, "\n")), text[m.start() - 20 : m.end()]
    lines = screen(written)
    assert not any(PROGRESS.search(line) for line in lines)  # erased once the run ended
    assert "run " in lines[-1] and "partial" in lines[-1]


def test_without_a_terminal_there_is_no_progress_line(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    env = _environment(api, db_url, THULIUM_LOG_FORMAT="text")  # even as text, to a pipe
    proc = spawn_cli("sync", env=env)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 1
    assert "\x1b[K" not in err and not PROGRESS.search(err)


def test_json_logs_on_a_terminal_have_no_progress_line(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    code, written = run_in_terminal(
        "sync", env=_environment(api, db_url, THULIUM_LOG_FORMAT="json")
    )

    text = written.decode("utf-8")
    assert code == 1
    assert "\x1b[K" not in text and not PROGRESS.search(text)
    assert all(line.startswith("{") for line in screen(written))
