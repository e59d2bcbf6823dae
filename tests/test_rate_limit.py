"""THULIUM_MAX_RPS spaces requests across all workers."""

from __future__ import annotations

import itertools
import sys
import threading
import time

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl.retry import RetryGate
from standin import StandIn
from tests.helpers.cli import make_env, run_cli
from tests.helpers.data import seed_campaigns

IDS = [f"{n:05d}" for n in range(1, 31)]


def test_requests_never_exceed_the_configured_rate(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    env = make_env(api, db_url, IDS, THULIUM_CONCURRENCY="8", THULIUM_MAX_RPS="20")

    assert run_cli("sync", env=env).code == 0

    times = [t for t, campaign in api.arrivals() if campaign]
    assert len(times) == len(IDS)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # 20 requests/s: 50 ms apart, give or take scheduling jitter of the threads
    assert min(gaps) > 0.035, gaps
    assert times[-1] - times[0] >= (len(IDS) - 1) / 20 * 0.95
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT count(DISTINCT campaign_id) FROM statuses")).scalar() == 30


def test_without_a_limit_the_workers_run_in_parallel(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    api.latency = 0.05
    env = make_env(api, db_url, IDS, THULIUM_CONCURRENCY="8")

    assert run_cli("sync", env=env).code == 0

    times = sorted(t for t, campaign in api.arrivals() if campaign)
    # with 8 workers, 8 requests arrive within one 50 ms latency window at the start
    assert times[7] - times[0] < 0.2  # sequential requests would need at least 0.35 s


def test_a_stalled_process_sends_its_late_requests_spaced_not_in_a_burst() -> None:
    gate = RetryGate(budget=60, max_rps=20)
    left: list[float] = []

    def request() -> None:
        gate.wait_turn()
        left.append(time.monotonic())

    workers = [threading.Thread(target=request) for _ in range(4)]
    before = sys.getswitchinterval()
    sys.setswitchinterval(5.0)  # the busy loop below keeps the GIL: every worker stalls
    try:
        for worker in workers:
            worker.start()
        stalled_until = time.monotonic() + 0.3  # past every slot the workers waited for
        while time.monotonic() < stalled_until:
            pass
    finally:
        sys.setswitchinterval(before)
    for worker in workers:
        worker.join()

    gaps = [b - a for a, b in itertools.pairwise(sorted(left))]
    assert min(gaps) > 0.035, gaps  # 50 ms apart, give or take the threads waking
