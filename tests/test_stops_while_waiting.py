"""A stop (SIGTERM, SIGINT) is honoured within seconds wherever a command waits for the
database: a lock before the run starts, a lock while a stopped run records its outcome, and
every other command's statements.

Kubernetes gives a pod 30 s between SIGTERM and SIGKILL; the job takes at most a few.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl.stop import DEADLINE
from standin import StandIn
from tests.helpers.cli import ROOT, make_env, run_cli, spawn_cli, terminate
from tests.helpers.data import seed_campaigns
from tests.helpers.locks import WAITING, dba_lock, job_sessions
from tests.helpers.pgproxy import Silence, serving
from tests.helpers.snapshots import assert_totals_add_up, committed, serve, wait_until

IDS = [f"{n:05d}" for n in range(1, 21)]
WITHIN = 5  # seconds from the signal to the process's exit


def _runs(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM sync_runs ORDER BY run_id")).mappings()
        return [dict(row) for row in rows]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if json.loads(line)["level"] == "error"]


@pytest.mark.parametrize(
    ("table", "mode"),
    [("alembic_version", "ACCESS EXCLUSIVE"), ("sync_runs", "EXCLUSIVE")],
    ids=["schema check", "start of the run"],
)
def test_sigterm_while_a_sync_waits_for_a_lock_before_it_starts_exits_143_within_seconds(
    api: StandIn, db_url: URL, migrated: Engine, table: str, mode: str
) -> None:
    seed_campaigns(api, IDS[:2])
    env = make_env(api, db_url, IDS[:2])  # THULIUM_DB_LOCK_TIMEOUT: the default 60 s
    with dba_lock(db_url, table, mode):
        sync = spawn_cli("sync", env=env)
        wait_until(lambda: job_sessions(db_url, condition=WAITING) == 1, timeout=30)

        err, took = terminate(sync, timeout=60)

    assert sync.returncode == 143, err
    assert took < WITHIN
    assert "Traceback" not in err
    assert _runs(migrated) == []  # it had not started: nothing to record
    assert api.total_requests == 0


def test_sigterm_while_a_stopped_run_cannot_record_its_outcome_exits_143_within_seconds(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    """The table the close writes is locked: the run stays `running`, and the next run
    closes it, saying how it ended."""
    serve(api, IDS, 1)
    api.latency = 0.05
    env = make_env(api, db_url, IDS, THULIUM_CONCURRENCY="1", THULIUM_BATCH_ROWS="1")
    sync = spawn_cli("sync", env=env)
    wait_until(lambda: committed(migrated) >= 2, timeout=30)
    with dba_lock(db_url, "sync_run_batches", "EXCLUSIVE"):
        wait_until(lambda: job_sessions(db_url, condition=WAITING) == 1, timeout=30)

        err, took = terminate(sync, timeout=90)

    assert sync.returncode == 143, err
    assert took < WITHIN
    assert "Traceback" not in err
    assert [run["outcome"] for run in _runs(migrated)] == ["running"]

    api.latency = 0
    assert run_cli("sync", env=env).code == 0
    stopped, _ = _runs(migrated)
    assert stopped["outcome"] == "abandoned"
    error = str(stopped["error"])
    assert "interrupted" in error and "died" not in error, error
    assert stopped["campaigns_total"] == len(IDS)
    assert_totals_add_up(migrated)


def test_a_failed_run_that_could_not_record_it_is_later_described_as_what_it_was(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    """Exit 3 on a lock timeout, and the close times out on the same lock: the run that
    closes it later says it failed, and why; not that its process died."""
    serve(api, IDS, 1)
    api.latency = 0.05
    env = make_env(
        api,
        db_url,
        IDS,
        THULIUM_CONCURRENCY="1",
        THULIUM_BATCH_ROWS="1",
        THULIUM_DB_LOCK_TIMEOUT="1",
        THULIUM_DB_RETRY_ATTEMPTS="1",
    )
    sync = spawn_cli("sync", env=env)
    wait_until(lambda: committed(migrated) >= 2, timeout=30)
    with dba_lock(db_url, "sync_run_batches", "EXCLUSIVE"):
        _, err = sync.communicate(timeout=60)

    assert sync.returncode == 3, err
    assert [run["outcome"] for run in _runs(migrated)] == ["running"]
    api.latency = 0
    assert run_cli("sync", env=env).code == 0
    failed, _ = _runs(migrated)
    assert failed["outcome"] == "abandoned"
    error = str(failed["error"])
    assert "failed" in error and "lock timeout" in error and "died" not in error, error
    assert_totals_add_up(migrated)


@pytest.mark.parametrize(
    "command",
    [["migrate"], ["runs"], ["grant-read", "ROLE"], ["check", "--quick"]],
    ids=lambda argv: argv[0],
)
def test_ctrl_c_on_a_command_waiting_for_the_database_exits_143_with_one_line(
    api: StandIn, db_url: URL, migrated: Engine, reader_role: str, command: list[str]
) -> None:
    seed_campaigns(api, IDS[:1])
    argv = [reader_role if word == "ROLE" else word for word in command]
    with dba_lock(db_url, "alembic_version"):
        proc = spawn_cli(*argv, env=make_env(api, db_url, IDS[:1]))
        wait_until(lambda: job_sessions(db_url, condition=WAITING) == 1, timeout=30)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)

    assert proc.returncode == 143, err
    assert len(err.splitlines()) == 1 and len(_error_lines(err)) == 1, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_sigterm_while_the_run_lock_waits_for_a_lock_on_its_table_exits_143_within_seconds(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS[:2])
    env = make_env(api, db_url, IDS[:2])
    with dba_lock(db_url, "run_locks", "EXCLUSIVE"):
        sync = spawn_cli("sync", env=env)
        wait_until(lambda: job_sessions(db_url, condition=WAITING) == 1, timeout=30)

        err, took = terminate(sync, timeout=60)

    assert sync.returncode == 143, err
    assert took < WITHIN
    assert _runs(migrated) == []


def test_sigterm_when_the_database_stops_answering_ends_the_process_by_the_stop_deadline(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    """Every connection open, nothing answered: no cancel, no timeout of the server's can end
    a wait; the process ends itself, and the next run closes what it could not."""
    serve(api, IDS, 1)
    api.latency = 0.05
    with serving(Silence(db_url)) as proxy:
        env = make_env(api, proxy.url, IDS, THULIUM_CONCURRENCY="1", THULIUM_BATCH_ROWS="1")
        sync = spawn_cli("sync", env=env)
        wait_until(lambda: committed(migrated) >= 2, timeout=30)
        proxy.silent.set()
        time.sleep(0.5)  # the job is now waiting on the database

        err, took = terminate(sync, timeout=60)

    assert sync.returncode == 143, err
    assert took < DEADLINE + 2
    assert "Traceback" not in err
    api.latency = 0
    assert run_cli("sync", env=make_env(api, db_url, IDS)).code == 0
    assert [run["outcome"] for run in _runs(migrated)] == ["abandoned", "succeeded"]
    assert_totals_add_up(migrated)


_HOLDS_THE_LOG_LOCK = """
import os, signal, sys, time
from etl import cli, logs
logs.configure(fmt="json")
with cli._stop_on_signals(announce=True) as stop:
    with logs._secrets_lock:  # as the main thread does while it redacts a log line
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)  # the signal is handled meanwhile, on the main thread
    sys.exit(0 if stop.wait(5) else 1)
"""


def test_a_signal_that_lands_while_a_log_line_is_being_written_is_still_handled() -> None:
    """The main thread may hold any lock when a signal lands: its handler takes none."""
    done = subprocess.run(
        [sys.executable, "-c", _HOLDS_THE_LOG_LOCK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,  # it used to wait for the lock it held, for good
    )

    assert done.returncode == 0, done.stderr
    assert "received SIGTERM" in done.stderr
