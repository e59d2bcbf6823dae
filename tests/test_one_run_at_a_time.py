"""The run lock: a second sync exits 75, touches nothing, and says who holds the lock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from subprocess import Popen

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl.shards import Shard
from standin import StandIn
from tests.helpers.cli import make_env, run_cli, spawn_cli
from tests.helpers.data import seed_campaigns
from tests.helpers.databases import libpq
from tests.helpers.history import assert_history_matches
from tests.helpers.locks import HOLDER_APPLICATION, WAITING, holding_run_lock, job_sessions
from tests.helpers.snapshots import assert_totals_add_up, wait_until

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
    with holding_run_lock(db_url) as holder:
        result = run_cli("sync", env=env)

    assert result.code == 75
    assert "another thulium-etl sync is running" in result.err
    # who holds it: pid, user, application name, since when
    held_by = f"held by pid {holder} (user postgres, application '{HOLDER_APPLICATION}', since 20"
    assert held_by in result.err
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


@contextlib.contextmanager
def losing_its_lock_mid_write(db_url: URL, env: dict[str, str]) -> Iterator[Popen[str]]:
    """A sync writing behind a DBA's lock on ``statuses`` whose lock's connection dies (a
    proxy's idle timeout, say): the run lock is free while its write is in flight. The
    DBA's lock goes at the end of the block."""
    with psycopg.connect(libpq(db_url)) as dba:
        dba.execute("LOCK TABLE statuses IN EXCLUSIVE MODE")
        run = spawn_cli("sync", env=env)
        wait_until(lambda: job_sessions(db_url, condition=WAITING) == 1, timeout=30)
        assert job_sessions(
            db_url, condition="state IN ('idle', 'idle in transaction')", terminate=True
        )
        yield run
        dba.rollback()


def test_a_run_whose_lock_connection_dies_mid_write_hands_over_without_double_counting(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS[:6])
    env = make_env(api, db_url, IDS[:6], THULIUM_CONCURRENCY="1")
    with losing_its_lock_mid_write(db_url, env) as first:
        second = spawn_cli("sync", env=env)
        # the second waits for the first's write in flight before it closes the first's run
        wait_until(lambda: job_sessions(db_url, condition=WAITING) == 2, timeout=30)
    _, first_err = first.communicate(timeout=60)
    _, second_err = second.communicate(timeout=60)

    assert first.returncode == 3, first_err
    assert "the campaigns it recorded are kept" in first_err
    assert second.returncode == 0, second_err
    with migrated.connect() as conn:
        runs = conn.execute(
            text("SELECT outcome, campaigns_total FROM sync_runs ORDER BY run_id")
        ).all()
        twice = conn.execute(
            text(
                "SELECT run_id, campaign_id FROM sync_run_campaigns "
                "GROUP BY run_id, campaign_id HAVING count(*) > 1"
            )
        ).all()
    assert twice == []
    assert [tuple(run) for run in runs] == [("abandoned", 6), ("succeeded", 6)]
    assert_totals_add_up(migrated)
    assert_history_matches(migrated)


def test_a_run_that_cannot_take_its_lock_again_closes_itself_when_nobody_took_over(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS[:6])
    env = make_env(api, db_url, IDS[:6], THULIUM_CONCURRENCY="1", THULIUM_SHARD="0/2")
    with contextlib.ExitStack() as resharded:
        with losing_its_lock_mid_write(db_url, env) as run:
            # a run of 3 shards starts meanwhile: the lock cannot be taken again
            resharded.enter_context(holding_run_lock(db_url, Shard(1, 3)))
        _, err = run.communicate(timeout=60)

    assert run.returncode == 3, err
    with migrated.connect() as conn:
        outcome = conn.execute(text("SELECT outcome FROM sync_runs")).scalar_one()
    assert outcome == "failed", err
    assert_totals_add_up(migrated)
