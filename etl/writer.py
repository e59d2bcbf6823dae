"""The writer: commits batches of campaigns, each campaign's data with its outcome row.

One batch is one transaction: the COPY-staged merge of its snapshots and the run history's
rows for every campaign in it commit together, or not at all. A lost connection or a
timeout is retried (:func:`etl.retry.database_retrying`); if the database refuses the
batch's data (a DBA's constraint, an index limit), the batch is written again campaign by
campaign, so that only the refused campaign fails. Anything else ends the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from tenacity import RetryCallState

from etl import history, load
from etl.batches import Batch
from etl.config import WriteSettings
from etl.database import Failure, classify, failure_message, reason, stoppable
from etl.errors import CampaignError, DatabaseError, InterruptedRun
from etl.fetch import Fetched
from etl.lock import RunLock
from etl.outcomes import CampaignResult
from etl.records import CampaignStat
from etl.retry import database_retrying
from etl.stop import Stop

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Writer:
    """Writes one run's batches; the only code that writes ``statuses``."""

    def __init__(
        self,
        engine: Engine,
        *,
        run_id: int,
        lock: RunLock,
        stop: Stop,
        settings: WriteSettings,
    ) -> None:
        self._engine = engine
        self._run_id = run_id
        self._lock = lock
        self._stop = stop
        self._settings = settings
        self.write_seconds = 0.0  # time inside write transactions, for throughput

    def write(self, batch: Batch) -> list[CampaignResult]:
        """Commit a batch; if the database refuses its data, isolate it campaign by campaign."""
        try:
            return self._retrying(
                lambda retried: self._commit(batch.fetched, batch.others, retried=retried),
                doing="writing a batch",
            )
        except DBAPIError as exc:  # refused data: every other failure has been raised
            if len(batch.fetched) <= 1 and not batch.others:
                return self.record([self._refused(item, exc) for item in batch.fetched])
            logger.warning(
                "a batch of %d campaigns failed (%s); writing them one by one",
                len(batch.fetched),
                reason(exc),
            )
        results: list[CampaignResult] = []
        for item in batch.fetched:
            alone = Batch()
            alone.add(item)
            results += self.write(alone)
        return results + self.record(batch.others)

    def record_discovery(self, *, active: Sequence[CampaignStat], planned: Sequence[str]) -> None:
        """What discovery found, and the campaigns the run now sets out to sync."""
        mine = set(planned)

        def record(_retried: bool) -> None:  # its statements are idempotent
            self._lock.ensure()
            with self._engine.begin() as conn, stoppable(conn, self._stop):
                history.record_discovery(
                    conn,
                    self._run_id,
                    active=[stat.campaign_id for stat in active],
                    stats=[stat for stat in active if stat.campaign_id in mine],
                )
                history.plan(conn, self._run_id, planned)

        self._retrying(record, doing="recording the active campaigns")

    def record(self, results: Sequence[CampaignResult]) -> list[CampaignResult]:
        """Record campaigns that bring no data: failed or skipped ones."""
        if not results:
            return []
        return self._retrying(
            lambda retried: self._commit([], results, retried=retried), doing="recording outcomes"
        )

    @staticmethod
    def _refused(item: Fetched, exc: DBAPIError) -> CampaignResult:
        error = CampaignError(
            f"the database rejected this campaign's data: {reason(exc)}",
            campaign_id=item.campaign_id,
        )
        return CampaignResult.failed(
            error, attempts=item.attempts, duration=item.duration, http_status=item.http_status
        )

    def _commit(
        self, fetched: Sequence[Fetched], others: Sequence[CampaignResult], *, retried: bool
    ) -> list[CampaignResult]:
        """Write a batch in one transaction. On a retry, first ask the database what the
        earlier attempt committed (a connection lost after COMMIT reached the server): what it
        recorded stands, and only the rest is written."""
        self._lock.ensure()
        started = time.monotonic()
        with self._engine.begin() as conn, stoppable(conn, self._stop):
            recorded: list[CampaignResult] = []
            if retried:
                ids = [item.campaign_id for item in fetched] + [o.campaign_id for o in others]
                recorded = history.recorded(conn, self._run_id, ids)
                if recorded:
                    logger.info(
                        "%d of the batch's %d campaigns were committed before the connection "
                        "was lost; not writing them again",
                        len(recorded),
                        len(ids),
                    )
                    done = {result.campaign_id for result in recorded}
                    fetched = [item for item in fetched if item.campaign_id not in done]
                    others = [result for result in others if result.campaign_id not in done]
            counts = load.apply_snapshots(
                conn, [item.snapshot for item in fetched], run_id=self._run_id
            )
            results = [
                CampaignResult.succeeded(
                    item.campaign_id,
                    counts[item.campaign_id],
                    attempts=item.attempts,
                    duration=item.duration,
                    http_status=item.http_status,
                )
                for item in fetched
            ]
            results.extend(others)
            history.record(conn, self._run_id, results)
        self.write_seconds += time.monotonic() - started
        return recorded + results

    def _retrying(self, action: Callable[[bool], T], *, doing: str) -> T:
        """Run ``action``, retrying a lost connection or a timeout; it is told whether this
        is a retry, so that it can find out whether a lost attempt committed after all.

        Raises the driver's error when the database refuses the data (the caller isolates
        it), :class:`InterruptedRun` on a stop, and :class:`DatabaseError` otherwise.
        """

        def retryable(exc: BaseException) -> bool:
            return (
                isinstance(exc, DBAPIError)
                and not self._stop.is_set()
                and classify(exc) in (Failure.LOST, Failure.TIMEOUT)
            )

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            assert isinstance(exc, DBAPIError)
            logger.warning(
                "database %s while %s (%s); retrying in %.1fs",
                classify(exc).value,
                doing,
                reason(exc),
                state.upcoming_sleep,
            )

        attempts = 0
        try:
            for attempt in database_retrying(
                attempts=self._settings.retry_attempts,
                initial_wait=self._settings.retry_wait,
                stop=self._stop,
                retryable=retryable,
                before_sleep=before_sleep,
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    return action(attempts > 1)
        except DBAPIError as exc:
            if self._stop.is_set():
                raise InterruptedRun(f"stopped while {doing}") from None
            if classify(exc) is Failure.DATA:
                raise
            raise DatabaseError(
                failure_message(self._engine.url, exc, doing=doing, attempts=attempts)
            ) from None
        raise AssertionError("tenacity returned without an outcome")  # pragma: no cover
