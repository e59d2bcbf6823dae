"""Every run's totals add up to its per-campaign rows, even for a run that died mid-way.

A killed run leaves no trace of the campaigns it never got to; the run that later finds it
abandoned records them as skipped (saying why) and counts the dead run's totals from what
it committed.
"""

from __future__ import annotations

import signal

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import StandIn
from tests.helpers.cli import make_env, run_cli, spawn_cli
from tests.helpers.history import assert_history_matches
from tests.helpers.snapshots import assert_totals_add_up, committed, serve, wait_until

IDS = [f"{n:05d}" for n in range(1, 31)]


def test_a_killed_run_is_found_abandoned_with_totals_from_what_it_committed(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    serve(api, IDS, 1)
    api.latency = 0.05
    env = make_env(api, db_url, IDS, THULIUM_CONCURRENCY="2", THULIUM_BATCH_ROWS="10")
    proc = spawn_cli("sync", env=env)
    wait_until(lambda: committed(migrated) >= 6, timeout=30)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    api.latency = 0

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    assert_totals_add_up(migrated)
    assert_history_matches(migrated)
    with migrated.connect() as conn:
        dead = (
            conn.execute(text("SELECT * FROM sync_runs ORDER BY run_id LIMIT 1")).mappings().one()
        )
        rows = conn.execute(
            text("SELECT outcome, error FROM sync_run_campaigns WHERE run_id = :r"),
            {"r": dead["run_id"]},
        ).all()
    assert dead["outcome"] == "abandoned"
    assert dead["campaigns_total"] == len(IDS) == len(rows)
    assert 6 <= dead["campaigns_ok"] < len(IDS)
    assert dead["rows_inserted"] > 0
    never = [error for outcome, error in rows if outcome == "skipped"]
    assert len(never) == len(IDS) - dead["campaigns_ok"]
    assert all("never attempted" in error and "died" in error for error in never)
