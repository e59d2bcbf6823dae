"""The batching policy: which fetched campaigns share one write transaction.

A batch's linger starts when its first result arrived from a worker, not when the writer got
to it. The batch closes when it weighs ``max_rows`` (statuses, and one for each campaign
without any: :func:`etl.fetch.weight`), or once its linger is over and no result is waiting,
or when nothing more will come. So a slow API gives small batches that land soon; a fast one,
whose results pile up while the writer works (the fetcher lets a batch and a half of them
wait), gives full batches that cost few transactions. And results that arrived during a
write are not made to wait a linger of their own, so the batch after the last answer is
small and the run ends soon after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from etl.fetch import Arrival, Fetched, weight
from etl.outcomes import CampaignResult
from etl.stop import Stop

LINGER = 0.25  # seconds a fetched campaign may wait for others to share its transaction
_IDLE_WAIT = 0.2  # seconds between looks at the stop request while no batch is open


class Results(Protocol):
    """Where results come from: a :class:`~etl.fetch.Fetcher`."""

    @property
    def exhausted(self) -> bool: ...

    def get(self, timeout: float) -> Arrival | None: ...


@dataclass
class Batch:
    """Campaigns to write in one transaction: snapshots, and failures to record with them."""

    fetched: list[Fetched] = field(default_factory=list)
    others: list[CampaignResult] = field(default_factory=list)
    started: float = 0.0
    weight: int = 0  # statuses, and one for each campaign without any (see fetch.weight)

    def add(self, result: Fetched | CampaignResult, *, arrived: float | None = None) -> None:
        """Add a result that arrived at ``arrived`` (``time.monotonic()``; default now)."""
        if not self:
            self.started = time.monotonic() if arrived is None else arrived
        self.weight += weight(result)
        if isinstance(result, Fetched):
            self.fetched.append(result)
        else:
            self.others.append(result)

    def __bool__(self) -> bool:
        return bool(self.fetched or self.others)


def batches(
    results: Results, *, max_rows: int, stop: Stop, linger: float = LINGER
) -> Iterator[Batch]:
    """Group ``results`` into batches as they arrive. A stop ends it at once: results not
    yet handed out are left to the caller to record as skipped."""
    batch = Batch()
    while not stop.is_set():
        if results.exhausted:
            if batch:
                yield batch
            return
        wait = batch.started + linger - time.monotonic() if batch else _IDLE_WAIT
        arrival = results.get(timeout=max(0.0, wait))
        if arrival is None:  # nothing waiting: a batch whose linger is over closes
            if batch and time.monotonic() >= batch.started + linger:
                yield batch
                batch = Batch()
            continue
        batch.add(arrival.result, arrived=arrival.at)
        if batch.weight >= max_rows:
            yield batch
            batch = Batch()
