"""The batching policy: which fetched campaigns share one write transaction.

A batch starts with the first result to arrive and closes when it holds ``max_rows``
statuses, or ``linger`` seconds after it started, or when nothing more will come. So a slow
API gives small batches that land soon, a fast one big batches that cost few transactions,
and a campaign never waits more than ``linger`` for others to share its transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from etl.fetch import Fetched, Fetcher
from etl.outcomes import CampaignResult
from etl.stop import Stop

LINGER = 0.25  # seconds a fetched campaign may wait for others to share its transaction
_IDLE_WAIT = 0.2  # seconds between looks at the stop request while no batch is open


@dataclass
class Batch:
    """Campaigns to write in one transaction: snapshots, and failures to record with them."""

    fetched: list[Fetched] = field(default_factory=list)
    others: list[CampaignResult] = field(default_factory=list)
    started: float = 0.0
    rows: int = 0

    def add(self, result: Fetched | CampaignResult) -> None:
        if not self:
            self.started = time.monotonic()
        if isinstance(result, Fetched):
            self.fetched.append(result)
            self.rows += len(result.snapshot.statuses)
        else:
            self.others.append(result)

    def __bool__(self) -> bool:
        return bool(self.fetched or self.others)


def batches(
    results: Fetcher, *, max_rows: int, stop: Stop, linger: float = LINGER
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
        result = results.get(timeout=max(0.0, wait))
        if result is not None:
            batch.add(result)
        full = batch.rows >= max_rows
        if batch and (full or time.monotonic() - batch.started >= linger or results.exhausted):
            yield batch
            batch = Batch()
