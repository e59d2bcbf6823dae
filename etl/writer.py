"""The writer: commits batches of campaigns, each campaign's data with its outcome row.

One batch is one transaction: the COPY-staged merge of its snapshots and the run history's
rows for every campaign in it commit together, or not at all. A lost connection or a
timeout is retried (:func:`etl.retry.database_retrying`); if the database refuses the
batch's data (a DBA's constraint, an index limit), the batch is written again campaign by
campaign, so that only the refused campaign fails. Anything else ends the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from tenacity import RetryCallState

from etl import history, load, logs
from etl.batches import Batch
from etl.config import WriteSettings
from etl.database import Failure, bounded, classify, failure_message, reason
from etl.errors import CampaignError, DatabaseError, InterruptedRun, RunTakenOver
from etl.fetch import Fetched
from etl.lock import RunLock
from etl.outcomes import CampaignResult, RunOutcome, RunTotals
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

    def record_discovery(
        self, *, active: Sequence[CampaignStat], planned: Sequence[str]
    ) -> str | None:
        """The campaigns the run now sets out to sync, and what discovery found of them.
        Returns why the database refused what discovery found (a DBA's constraint or trigger
        on ``campaign_stats``), if it did: the run goes on without it."""
        mine = set(planned)
        refused: str | None = None

        def record(_retried: bool) -> None:  # its statements are idempotent
            nonlocal refused
            with self._transaction(doing="recording the active campaigns") as conn:
                history.plan(conn, self._run_id, planned)
                history.seen_active(conn, [stat.campaign_id for stat in active])
                try:
                    with conn.begin_nested():
                        # checked here, not at COMMIT: a DBA's deferred constraint too
                        conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
                        history.record_stats(
                            conn, self._run_id, [s for s in active if s.campaign_id in mine]
                        )
                    refused = None
                except DBAPIError as exc:
                    if classify(exc) is not Failure.DATA:
                        raise
                    refused = reason(exc)

        self._retrying(record, doing="recording the active campaigns")
        return refused

    def record(self, results: Sequence[CampaignResult]) -> list[CampaignResult]:
        """Record campaigns that bring no data: failed or skipped ones."""
        if not results:
            return []
        doing = "recording outcomes"

        def commit(ascii_only: bool) -> list[CampaignResult]:
            texts = _texts(results, ascii_only)
            return self._retrying(lambda r: self._commit([], texts, retried=r), doing=doing)

        return self._storing_text(commit, doing=doing)

    def finish(
        self, *, outcome: RunOutcome, error: str | None, unrecorded: str
    ) -> tuple[RunTotals, float]:
        """Close the run (:func:`history.finish_run`), retried like any write: it only
        records what is missing and counts the totals again, so a retry is harmless."""
        doing = "recording the run's outcome"

        def close(ascii_only: bool) -> tuple[RunTotals, float]:
            said, why = _text(error, ascii_only), _text(unrecorded, ascii_only)
            return self._retrying(
                lambda _: self._close(outcome, error=said, unrecorded=why), doing=doing
            )

        return self._storing_text(close, doing=doing)

    def close_after_failure(self, *, outcome: RunOutcome, error: str) -> None:
        """Record that the run ended on ``error``: one attempt, best effort (within the stop's
        grace after a stop). If the database refuses it, the run's lock keeps a note of how
        it ended for the run that later closes it as abandoned."""
        try:
            why = f"not attempted: the run stopped first ({error})"
            self._close(outcome, error=error, unrecorded=why, locked=False)
        except RunTakenOver:
            pass  # the sync that took over closed it
        except (DBAPIError, InterruptedRun) as exc:
            why = reason(exc) if isinstance(exc, DBAPIError) else str(exc)
            logger.warning(
                "could not record the outcome of run %d (%s); the next run will close it",
                self._run_id,
                why,
            )
            self._lock.leave_note(
                self._run_id, f"{outcome} ({error}); recording that failed: {why}"
            )

    def _close(
        self,
        outcome: RunOutcome,
        *,
        error: str | None,
        unrecorded: str | None,
        locked: bool = True,
    ) -> tuple[RunTotals, float]:
        # A stop that cancels it ends the run in sync's crash path, which closes it anyway.
        doing = "recording the run's outcome"
        with self._transaction(doing=doing, closing_as=outcome, locked=locked) as conn:
            return history.finish_run(
                conn, self._run_id, outcome=outcome, error=error, unrecorded=unrecorded or ""
            )

    def _storing_text(self, write: Callable[[bool], T], *, doing: str) -> T:
        """``write(False)``; if the database refuses the text it is given (a database whose
        encoding is not UTF-8 cannot hold every character of an API's error message),
        ``write(True)``, with every text escaped to ASCII."""
        try:
            return write(False)
        except DBAPIError as exc:
            logger.warning(
                "the database refused the data while %s (%s); trying again with every text "
                "escaped to ASCII, in case it is one the database's encoding cannot hold",
                doing,
                reason(exc),
            )
        try:
            return write(True)
        except DBAPIError as exc:
            raise DatabaseError(failure_message(self._engine.url, exc, doing=doing)) from None

    @contextlib.contextmanager
    def _transaction(
        self, *, doing: str, closing_as: RunOutcome | None = None, locked: bool = True
    ) -> Iterator[Connection]:
        """One write transaction of the run: the lock checked (unless not ``locked``: a run
        that failed closes itself if no other run has closed it, lock or no lock), the run's
        row held (see :func:`history.hold`), its waits bounded (:func:`etl.database.bounded`)."""
        if locked and not self._stop.is_set():  # a stopped run closes itself, lock or no lock
            self._lock.ensure()
        with (
            self._engine.connect() as conn,
            bounded(conn, self._stop, doing=doing),
            conn.begin(),
        ):
            history.hold(conn, self._run_id, closing_as=closing_as)
            yield conn

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
        started = time.monotonic()
        with self._transaction(doing="writing a batch") as conn:
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
            applied = load.apply_snapshots(
                conn, [item.snapshot for item in fetched], run_id=self._run_id
            )
            results = [
                CampaignResult.succeeded(
                    item.campaign_id,
                    applied.counts[item.campaign_id],
                    attempts=item.attempts,
                    duration=item.duration,
                    http_status=item.http_status,
                )
                for item in fetched
            ]
            results.extend(others)
            history.record(conn, self._run_id, results)
        self.write_seconds += time.monotonic() - started
        for code in applied.new_codes:
            logger.warning(
                "system_status %r is not in Thulium's documented list: added to "
                "system_statuses with documented = false",
                code,
            )
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


def _text(text: str | None, ascii_only: bool) -> str | None:
    if text is None or not ascii_only:
        return text
    return logs.clean(text).encode("ascii", "backslashreplace").decode("ascii")


def _texts(results: Sequence[CampaignResult], ascii_only: bool) -> Sequence[CampaignResult]:
    if not ascii_only:
        return results
    return [
        dataclasses.replace(
            r, error=_text(r.error, ascii_only), request_id=_text(r.request_id, ascii_only)
        )
        for r in results
    ]
