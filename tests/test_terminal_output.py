"""What the job prints is safe on any terminal, whatever text the API sent.

Thulium's error messages reach the text logs, ``runs`` and ``check``. There, every control
character (C0 with CR, LF and TAB, DEL, C1), the bidi overrides and isolates and the line and
paragraph separators are shown as visible escapes (``\\x1b``, ``\\n``, ``\\u202e``): an error
message can neither act on the terminal nor break its line. JSON output (logs, ``runs
--json``) escapes those json.dumps leaves raw. On an output whose encoding cannot hold a
character (``PYTHONIOENCODING=ascii``, a Latin-2 terminal) the character is written as a
``\\uXXXX`` escape instead of the command failing: text stays readable, JSON stays valid and
means the same.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from etl import logs
from standin import Fault, StandIn
from tests.helpers.cli import Result, make_env, run_cli, spawn_cli
from tests.helpers.data import last_run, seed_campaigns

OK, REFUSED, BROKEN = "00001", "00002", "00003"  # synced; a 400; a 500 past every retry
IDS = [OK, REFUSED, BROKEN]


@dataclass
class StoredRun:
    """A sync whose failed campaigns carry Thulium's ``message``, recorded in the history."""

    env: dict[str, str]
    sync: Result
    run_id: int


def sync_with_failures(
    api: StandIn, db_url: URL, engine: Engine, message: str, **env: str
) -> StoredRun:
    """Sync three campaigns in this process: one fine, two answering ``message``."""
    seed_campaigns(api, [OK], n=2)
    body = json.dumps({"request_id": "req-1", "errors": [{"message": message, "code": 9}]})
    api.set_permanent_fault(REFUSED, Fault.status(400, body=body))
    api.set_permanent_fault(BROKEN, Fault.status(500, body=body))
    environment = make_env(api, db_url, IDS, **env)
    result = run_cli("sync", env=environment)
    assert result.code == 1, result.err
    run, _ = last_run(engine)
    return StoredRun(environment, result, run["run_id"])


def run_process(*argv: str, env: dict[str, str]) -> Result:
    proc = spawn_cli(*argv, env=env, stdin=subprocess.DEVNULL)
    out, err = proc.communicate(timeout=60)
    return Result(proc.returncode, out, err)


# -- control characters ------------------------------------------------------------------------

# Retitles the terminal, clears the screen, and forges a line of its own.
HOSTILE = "\x1b]0;owned\x07\x1b[2J\rrun 99 succeeded"
HOSTILE_SHOWN = r"\x1b]0;owned\x07\x1b[2J\rrun 99 succeeded"
# What json.dumps leaves raw: DEL, C1 (a one-byte CSI, NEL), bidi overrides and isolates, and
# the line and paragraph separators.
EVASIVE = "del\x7f csi\x9b2J nel\x85 rlo\u202eevil\u202c lri\u2066x\u2069 ls\u2028ps\u2029"
# Any character a terminal acts on (a line break is output's own, never a value's).
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR) +\S")


def test_text_logs_show_control_characters_from_the_api_as_escapes_one_event_a_line(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    stored = sync_with_failures(api, db_url, migrated, HOSTILE, THULIUM_LOG_FORMAT="text")

    lines = stored.sync.err.splitlines()
    assert not RAW_CONTROL.search(stored.sync.err)
    assert all(TEXT_LINE.match(line) for line in lines), stored.sync.err
    for campaign_id in (REFUSED, BROKEN):
        failed = [line for line in lines if f"campaign {campaign_id} failed" in line]
        assert len(failed) == 1 and HOSTILE_SHOWN in failed[0], stored.sync.err


def test_runs_shows_control_characters_from_the_api_as_escapes_one_row_a_line(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    stored = sync_with_failures(api, db_url, migrated, HOSTILE)

    runs = run_cli("runs", env=stored.env)
    campaigns = run_cli("runs", "--run", str(stored.run_id), env=stored.env)

    for result, rows in ((runs, 1), (campaigns, len(IDS))):
        assert result.code == 0, result.err
        assert not RAW_CONTROL.search(result.out)
        assert len(result.out.splitlines()) == 1 + rows, result.out
    assert runs.out.count(HOSTILE_SHOWN) == 2  # the run's summary names both failures
    failed = [line for line in campaigns.out.splitlines() if " failed " in line]
    assert len(failed) == 2 and all(HOSTILE_SHOWN in line for line in failed), campaigns.out


def test_check_shows_control_characters_from_the_api_as_escapes_one_verdict_a_line(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    stored = sync_with_failures(api, db_url, migrated, HOSTILE)

    result = run_cli("check", env=stored.env)

    assert result.code == 1, result.err
    assert not RAW_CONTROL.search(result.out)
    lines = result.out.splitlines()
    assert all(re.match(r"(PASS|FAIL)  (database|campaign \d{5}): ", line) for line in lines)
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 2 and all(HOSTILE_SHOWN in line for line in failed), result.out


def test_json_logs_and_runs_json_escape_what_json_dumps_leaves_raw(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    stored = sync_with_failures(api, db_url, migrated, EVASIVE)  # JSON logs

    listed = run_cli("runs", "--run", str(stored.run_id), "--json", env=stored.env)

    for output in (stored.sync.err, listed.out):
        assert not RAW_CONTROL.search(output)
    events = [json.loads(line) for line in stored.sync.err.splitlines()]
    failures = [e["message"] for e in events if e.get("outcome") == "failed"]
    assert len(failures) == 2 and all(EVASIVE in message for message in failures)
    errors = [row["error"] for row in json.loads(listed.out) if row["outcome"] == "failed"]
    assert len(errors) == 2 and all(EVASIVE in error for error in errors)


def test_a_traceback_in_a_text_log_keeps_its_lines_but_shows_control_characters_as_escapes() -> (
    None
):
    try:
        raise ValueError(f"bad answer: {HOSTILE}")
    except ValueError:
        record = logging.LogRecord(
            "thulium-etl",
            logging.ERROR,
            __file__,
            1,
            "internal error: %s",
            (HOSTILE,),
            sys.exc_info(),
        )

    line = logs.TextFormatter().format(record)

    assert not RAW_CONTROL.search(line)
    first, *traceback = line.split("\n")
    assert first.endswith(f"internal error: {HOSTILE_SHOWN}")
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-1] == f"ValueError: bad answer: {HOSTILE_SHOWN}"


def test_a_secret_is_masked_before_its_control_characters_are_escaped() -> None:
    secret = f"zebra\x1b[31m\tpass-{uuid.uuid4().hex}"  # no escaped form of it is registered
    logs.add_secret(secret)

    assert logs.visible(f"token {secret}\r\n") == r"token ***\r\n"


# -- output the terminal cannot encode --------------------------------------------------------

NON_ASCII = "Kampania wstrzymana: błąd, café, 5 € 😀"
AS_ESCAPED = r"Kampania wstrzymana: b\u0142\u0105d, caf\u00e9, 5 \u20ac \ud83d\ude00"


def test_runs_escapes_what_the_output_cannot_encode(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    stored = sync_with_failures(api, db_url, migrated, NON_ASCII)
    ascii_output = {**stored.env, "PYTHONIOENCODING": "ascii"}

    for argv in (["runs"], ["runs", "--run", str(stored.run_id)]):
        result = run_process(*argv, env=ascii_output)

        assert result.code == 0, result.err
        assert result.out.isascii()
        assert AS_ESCAPED in result.out
        assert "Traceback" not in result.err


def test_runs_json_on_an_output_that_cannot_encode_it_is_valid_json_with_the_same_text(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    stored = sync_with_failures(api, db_url, migrated, NON_ASCII)

    result = run_process(
        "runs",
        "--run",
        str(stored.run_id),
        "--json",
        env={**stored.env, "PYTHONIOENCODING": "ascii"},
    )

    assert result.code == 0, result.err
    assert result.out.isascii()
    errors = {row["campaign_id"]: row["error"] for row in json.loads(result.out)}
    assert NON_ASCII in errors[REFUSED] and NON_ASCII in errors[BROKEN]


def test_check_escapes_what_the_output_cannot_encode(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    stored = sync_with_failures(api, db_url, migrated, NON_ASCII)

    result = run_process("check", env={**stored.env, "PYTHONIOENCODING": "ascii"})

    assert result.code == 1, result.err
    assert result.out.isascii()
    failed = [line for line in result.out.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 2 and all(AS_ESCAPED in line for line in failed), result.out
    assert "Traceback" not in result.err


def test_json_logs_on_a_stream_that_cannot_encode_them_stay_valid_json(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    stored = sync_with_failures(api, db_url, migrated, "first sync")
    api.set_permanent_fault(
        REFUSED, Fault.status(400, body=json.dumps({"errors": [{"message": NON_ASCII}]}))
    )

    result = run_process("sync", env={**stored.env, "PYTHONIOENCODING": "ascii"})

    assert result.code == 1, result.err
    assert result.err.isascii()
    events = [json.loads(line) for line in result.err.splitlines()]
    assert any(NON_ASCII in event["message"] for event in events if event["level"] == "error")
