"""Fetched results wait to be written in a queue bounded by their weight (statuses), not by
their number: workers with a result and no room stop fetching until the writer reads."""

from __future__ import annotations

import time

from sqlalchemy.engine import URL

from etl import config
from etl.client import ThuliumClient
from etl.fetch import Fetcher
from etl.retry import RetryGate
from etl.stop import Stop
from standin import StandIn
from tests.helpers.cli import make_env
from tests.helpers.data import seed_campaigns
from tests.helpers.snapshots import wait_until

IDS = [f"{n:05d}" for n in range(1, 21)]


def test_workers_stop_fetching_while_the_waiting_results_weigh_max_queued(
    api: StandIn, db_url: URL
) -> None:
    seed_campaigns(api, IDS, n=5)
    settings = config.load(config.SyncCommand, make_env(api, db_url, IDS), {})
    stop = Stop()
    gate = RetryGate(budget=settings.retry.budget, max_rps=settings.fetch.max_rps, stop=stop)
    with (
        ThuliumClient(settings.api, settings.retry, gate) as client,
        Fetcher(client, IDS, concurrency=4, stop=stop, max_queued=10) as results,
    ):
        # Two results of 5 statuses fill the queue; each of the 4 workers then holds one.
        wait_until(lambda: len(api.arrivals()) >= 6, timeout=10)
        time.sleep(0.5)  # time enough to fetch all 20, were nothing waiting for room
        fetched_unread = len(api.arrivals())
        read = []
        while (arrival := results.get(timeout=5)) is not None:
            read.append(arrival.result.campaign_id)

    assert fetched_unread == 6
    assert sorted(read) == IDS
