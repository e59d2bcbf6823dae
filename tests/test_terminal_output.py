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
import subprocess
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from etl.standin import Fault, StandIn
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
