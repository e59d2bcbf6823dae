"""Killed, terminated or cut off from the database mid-run: never a half-written campaign.

Each test runs the real job as a subprocess against the stand-in (with latency, so a run
lasts long enough to be interrupted) and then checks, campaign by campaign, that the stored
rows are exactly one complete snapshot the API served, never a mixture.
"""

from __future__ import annotations

import random
import signal
import time

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import StandIn
from tests.helpers.cli import make_env, run_cli, spawn_cli, terminate
from tests.helpers.data import stored_statuses
from tests.helpers.databases import libpq
from tests.helpers.snapshots import (
    assert_at,
    assert_totals_add_up,
    assert_whole,
    committed,
    serve,
    wait_until,
)

IDS = [f"{n:05d}" for n in range(1, 41)]


def test_sigkill_at_random_moments_never_half_writes_and_the_next_run_recovers(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    api.latency = 0.03  # a run: ~0.4 s of imports, then ~0.3 s of fetching and writing
    env = make_env(api, db_url, IDS, THULIUM_CONCURRENCY="4", THULIUM_BATCH_ROWS="20")
    rng = random.Random(1234)
    kills, deadline = 0, time.monotonic() + 20
    version = 0
    while kills < 12 and time.monotonic() < deadline:
        version += 1
        serve(api, IDS, version)
        before = committed(migrated)
        proc = spawn_cli("sync", env=env)
        if kills % 2:  # anywhere, startup included
            time.sleep(rng.uniform(0.0, 0.9))
        else:  # after a random number of campaigns were committed
            target = before + rng.randint(0, len(IDS) - 5)
            wait_until(
                lambda target=target, proc=proc: (  # type: ignore[misc]
                    committed(migrated) >= target or proc.poll() is not None
                ),
                timeout=20,
            )
            time.sleep(rng.uniform(0.0, 0.02))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        kills += 1
        assert_whole(migrated, IDS, range(1, version + 1))

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    assert_at(migrated, IDS, version)
    with migrated.connect() as conn:
        runs = conn.execute(text("SELECT outcome, error FROM sync_runs")).all()
    outcomes = [outcome for outcome, _ in runs]
    assert "running" not in outcomes
    # every run the kills cut short was found and marked by a later run, with a reason
    assert all(outcome in ("succeeded", "abandoned") for outcome in outcomes)
    assert all("died" in (error or "") for outcome, error in runs if outcome == "abandoned")
    assert outcomes.count("abandoned") >= 3, "the kills should land mid-run most of the time"
    assert_totals_add_up(migrated)


def test_sigterm_stops_within_seconds_records_interrupted_and_exits_143(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    serve(api, IDS, 1)
    api.latency = 0.1  # 40 campaigns at concurrency 2: about 2 s of fetching
    env = make_env(api, db_url, IDS, THULIUM_CONCURRENCY="2")
    proc = spawn_cli("sync", env=env)
    wait_until(lambda: committed(migrated) >= 3, timeout=20)

    err, stopped_after = terminate(proc, timeout=20)

    assert proc.returncode == 143, err
    assert stopped_after < 5
    with migrated.connect() as conn:
        run = conn.execute(text("SELECT * FROM sync_runs")).mappings().one()
        outcomes: dict[str, int] = {
            outcome: count
            for outcome, count in conn.execute(
                text("SELECT outcome, count(*) FROM sync_run_campaigns GROUP BY outcome")
            )
        }
    assert run["outcome"] == "interrupted" and run["finished_at"] is not None
    assert outcomes.get("succeeded", 0) >= 3 and outcomes.get("skipped", 0) >= 1
    assert sum(outcomes.values()) == len(IDS)
    assert run["campaigns_ok"] == outcomes["succeeded"]
    assert_totals_add_up(migrated)
    assert_whole(migrated, IDS, range(1, 2))
    api.latency = 0
    assert run_cli("sync", env=env).code == 0
    assert_whole(migrated, IDS, range(1, 2))
    assert all(stored_statuses(migrated, c) for c in IDS)


def test_sigterm_does_not_wait_for_a_slow_request(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    serve(api, IDS, 1)
    api.latency = 20  # every request hangs far longer than the grace period
    env = make_env(api, db_url, IDS[:2], THULIUM_TIMEOUT="60")
    proc = spawn_cli("sync", env=env)
    wait_until(lambda: api.total_requests >= 2, timeout=20)

    _, stopped_after = terminate(proc, timeout=20)

    assert proc.returncode == 143
    assert stopped_after < 5
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT outcome FROM sync_runs")).scalar_one() == "interrupted"
        assert conn.execute(text("SELECT count(*) FROM statuses")).scalar_one() == 0


def _terminate_job_connections(db_url: URL) -> int:
    with psycopg.connect(libpq(db_url), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'thulium-etl' AND datname = %s AND pid <> pg_backend_pid()",
            (db_url.database,),
        ).fetchall()
    return len(rows)


def test_lost_database_connections_mid_run_are_survived(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    serve(api, IDS, 1)
    env = make_env(api, db_url, IDS, THULIUM_CONCURRENCY="2", THULIUM_DB_RETRY_WAIT="0.2")
    assert run_cli("sync", env=env).code == 0
    serve(api, IDS, 2)
    api.latency = 0.05
    proc = spawn_cli("sync", env=env)
    wait_until(lambda: committed(migrated) >= len(IDS) + 3, timeout=20)

    terminated = _terminate_job_connections(db_url)
    time.sleep(0.3)
    terminated += _terminate_job_connections(db_url)
    _, err = proc.communicate(timeout=60)

    assert terminated >= 2  # the lock's connection and the writer's
    assert proc.returncode in (0, 1), err
    assert "database connection lost" in err or "lost the lock" in err
    assert_whole(migrated, IDS, range(1, 3))
    with migrated.connect() as conn:
        last = conn.execute(
            text("SELECT outcome FROM sync_runs ORDER BY run_id DESC LIMIT 1")
        ).scalar_one()
    assert last in ("succeeded", "partial")
    assert_totals_add_up(migrated)
    api.latency = 0
    assert run_cli("sync", env=env).code == 0
    assert_at(migrated, IDS, 2)
