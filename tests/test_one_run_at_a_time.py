"""The advisory lock: a second sync exits 75 and touches nothing."""

from __future__ import annotations

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl.lock import lock_key
from etl.standin import StandIn
from tests.helpers.cli import make_env, run_cli, spawn_cli
from tests.helpers.data import seed_campaigns
from tests.helpers.databases import libpq

IDS = [f"{n:05d}" for n in range(1, 21)]


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT count(*) FROM sync_runs")).scalar_one()
        rows = conn.execute(text("SELECT count(*) FROM statuses")).scalar_one()
    return runs, rows


def test_a_sync_that_finds_the_lock_taken_exits_75_and_writes_nothing(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS[:2])
    env = make_env(api, db_url, IDS[:2])
    with psycopg.connect(libpq(db_url), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key(),))

        result = run_cli("sync", env=env)

    assert result.code == 75
    assert "another thulium-etl sync is running" in result.err
    assert _counts(migrated) == (0, 0)
    assert api.total_requests == 0


def test_two_syncs_started_at_once_exactly_one_runs(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    api.latency = 0.1  # 20 campaigns at concurrency 2: the first run lasts about 1 s
    env = make_env(api, db_url, IDS, THULIUM_CONCURRENCY="2")

    first, second = spawn_cli("sync", env=env), spawn_cli("sync", env=env)
    logs = [proc.communicate(timeout=60)[1] for proc in (first, second)]
    codes = sorted([first.returncode, second.returncode])

    assert codes == [0, 75], logs
    with migrated.connect() as conn:
        runs = conn.execute(text("SELECT outcome FROM sync_runs")).scalars().all()
    assert runs == ["succeeded"]
    assert api.total_requests == len(IDS)
