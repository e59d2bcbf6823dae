"""Shards: N pods split the campaigns; each campaign synced exactly once; locks per shard."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl.shards import Shard, select, shard_of
from standin import StandIn
from tests.helpers.cli import make_env, run_cli, spawn_cli
from tests.helpers.data import seed_campaigns
from tests.helpers.locks import holding_run_lock
from tests.helpers.reporting import sql_blocks
from tests.helpers.snapshots import assert_totals_add_up, committed, wait_until

IDS = [f"{n:05d}" for n in range(1, 61)]


def test_each_campaign_belongs_to_exactly_one_shard_and_the_split_is_even() -> None:
    ids = [f"{n:05d}" for n in range(3000)]
    parts = [select(ids, Shard(i, 3)) for i in range(3)]
    assert sorted(c for part in parts for c in part) == sorted(ids)
    assert all(800 < len(part) < 1200 for part in parts), [len(p) for p in parts]


def test_adding_campaigns_or_a_shard_moves_few_campaigns() -> None:
    ids = [f"{n:05d}" for n in range(3000)]
    before = {c: shard_of(c, 3) for c in ids}
    more = [*ids, *(f"A{n:04d}" for n in range(300))]
    assert all(shard_of(c, 3) == before[c] for c in ids)  # adding campaigns moves none
    moved = sum(shard_of(c, 4) != before[c] for c in more[:3000])
    assert moved < 3000 * 0.35, moved  # about 1/4 move, never a reshuffle of all


def test_three_shards_at_once_sync_every_campaign_exactly_once(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    api.latency = 0.02
    env = make_env(api, db_url, IDS, THULIUM_CONCURRENCY="2")

    procs = [spawn_cli("sync", "--shard", f"{i}/3", env=env) for i in range(3)]
    logs = [proc.communicate(timeout=60)[1] for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0, 0], logs
    with migrated.connect() as conn:
        runs = conn.execute(text("SELECT run_id, shard, outcome FROM sync_runs")).all()
        synced = conn.execute(
            text(
                "SELECT c.campaign_id, r.shard FROM sync_run_campaigns c "
                "JOIN sync_runs r USING (run_id) WHERE c.outcome = 'succeeded'"
            )
        ).all()
        stored = conn.execute(text("SELECT count(DISTINCT campaign_id) FROM statuses")).scalar()
    assert sorted(shard for _, shard, _ in runs) == ["0/3", "1/3", "2/3"]
    assert {outcome for _, _, outcome in runs} == {"succeeded"}
    assert Counter(c for c, _ in synced) == Counter(IDS)  # each exactly once
    assert all(shard_of(c, 3) == int(shard.split("/")[0]) for c, shard in synced)
    assert stored == len(IDS)
    assert all(api.requests_for(c) == 1 for c in IDS)


def test_the_same_shard_twice_or_an_unsharded_run_alongside_exits_75(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS[:3])
    env = make_env(api, db_url, IDS[:3])
    with holding_run_lock(db_url, Shard(1, 3)):  # as a running shard 1/3 does
        same = run_cli("sync", "--shard", "1/3", env=env)
        unsharded = run_cli("sync", env=env)
        other = run_cli("sync", "--shard", "0/3", env=env)

    assert same.code == 75 and "shard 1/3" in same.err
    assert unsharded.code == 75
    assert other.code == 0, other.err
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT shard FROM sync_runs")).scalars().all() == ["0/3"]


def test_a_shard_of_another_count_alongside_exits_75(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    """0/2 and 0/3 (a change of the number of shards) would write the same campaigns."""
    seed_campaigns(api, IDS[:3])
    env = make_env(api, db_url, IDS[:3])
    with holding_run_lock(db_url, Shard(1, 3)):  # as a running shard 1/3 does
        other_count = run_cli("sync", "--shard", "0/2", env=env)

    assert other_count.code == 75
    assert "number of shards other than 2" in other_count.err
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sync_runs")).scalar_one() == 0
    assert run_cli("sync", "--shard", "0/2", env=env).code == 0  # its lock was not kept


def test_a_killed_shard_is_closed_by_a_run_of_another_number_of_shards(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    """A 0/2 run killed, then nights of 0/3, 1/3, 2/3: no run of 2 shards will come again,
    and the lock of a 3-shard run proves no 2-shard run is alive."""
    ids = IDS[:20]
    seed_campaigns(api, ids)
    api.latency = 0.05
    env = make_env(api, db_url, ids, THULIUM_CONCURRENCY="1", THULIUM_BATCH_ROWS="1")
    killed = spawn_cli("sync", "--shard", "0/2", env=env)
    wait_until(lambda: committed(migrated) >= 2, timeout=30)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    api.latency = 0

    assert run_cli("sync", "--shard", "0/3", env=env).code == 0

    with migrated.connect() as conn:
        runs = conn.execute(
            text("SELECT shard, outcome, campaigns_total FROM sync_runs ORDER BY run_id")
        ).all()
    assert [tuple(run) for run in runs] == [
        ("0/2", "abandoned", len(select(ids, Shard(0, 2)))),
        ("0/3", "succeeded", len(select(ids, Shard(0, 3)))),
    ]
    assert_totals_add_up(migrated)


def test_a_kubernetes_indexed_job_picks_its_shard_from_job_completion_index(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    env = make_env(api, db_url, IDS, JOB_COMPLETION_INDEX="2", THULIUM_SHARDS="3")

    assert run_cli("sync", env=env).code == 0

    with migrated.connect() as conn:
        synced = conn.execute(text("SELECT campaign_id FROM sync_run_campaigns")).scalars().all()
        assert conn.execute(text("SELECT shard FROM sync_runs")).scalar_one() == "2/3"
    assert sorted(synced) == sorted(select(IDS, Shard(2, 3)))


@pytest.mark.parametrize(
    ("extra", "argv", "message"),
    [
        ({}, ["--shard", "3/3"], "THULIUM_SHARD='3/3'"),
        ({}, ["--shard", "one/3"], "must look like I/N"),
        ({"THULIUM_SHARD": "0/0"}, [], "THULIUM_SHARD='0/0'"),
        ({"JOB_COMPLETION_INDEX": "1"}, [], "THULIUM_SHARDS is not"),
        ({"JOB_COMPLETION_INDEX": "4", "THULIUM_SHARDS": "3"}, [], "JOB_COMPLETION_INDEX"),
    ],
)
def test_a_bad_shard_is_a_configuration_error(
    api: StandIn, db_url: URL, extra: dict[str, str], argv: list[str], message: str
) -> None:
    env = make_env(api, db_url, IDS, **extra)

    result = run_cli("sync", *argv, env=env)

    assert result.code == 2
    assert message in result.err
    assert api.total_requests == 0


def test_the_documented_last_run_trouble_covers_every_shard_of_the_night(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    ids = IDS[:12]
    failing = select(ids, Shard(0, 2))[0]  # unknown to the stand-in: a 404
    seed_campaigns(api, [c for c in ids if c != failing])
    env = make_env(api, db_url, ids)
    for shard in ("0/2", "1/2"):  # the failing shard's run is not the newest
        run_cli("sync", env={**env, "THULIUM_SHARD": shard})
    docs = Path(__file__).resolve().parent.parent / "docs" / "queries.md"
    query = sql_blocks(docs.read_text(encoding="utf-8"))["What went wrong in the last run"]

    with migrated.connect() as conn:
        rows = conn.execute(text(query)).all()

    assert [(row.shard, row.campaign_id, row.outcome) for row in rows] == [
        ("0/2", failing, "failed")
    ]
