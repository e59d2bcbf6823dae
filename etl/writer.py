"""The writer: commits batches of campaigns, each campaign's data with its outcome row.

One batch is one transaction: the COPY-staged merge of its snapshots and the run history's
rows for every campaign in it commit together, or not at all. A lost connection or a
timeout is retried (:func:`etl.retry.database_retrying`); if the database refuses the
batch's data (a DBA's constraint, an index limit), its campaigns are written again one by
one, so that only the refused campaign fails. Anything else ends the run.

Texts (error messages, request ids) are written with every character the database's
encoding cannot hold escaped (``\\u041e``): a database that is not UTF-8 (LATIN2, say)
records an API's message in Cyrillic rather than refuse it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from tenacity import RetryCallState, Retrying

from etl import history, load, logs
from etl.batches import Batch
from etl.config import WriteSettings
from etl.database import Failure, bounded, classify, failure_message, reason
from etl.errors import CampaignError, DatabaseError, InterruptedRun, RunTakenOver
from etl.fetch import Fetched
from etl.lock import RunLock
from etl.outcomes import CampaignResult, Counts, RunOutcome, RunTotals
from etl.records import CampaignStat
from etl.retry import database_retrying, retried
from etl.stop import Stop

logger = logging.getLogger(__name__)

T = TypeVar("T")
_CLOSING = "recording the run's outcome"
_UNDOCUMENTED = (
    "system_status %r is not in Thulium's documented list: added to system_statuses with "
    "documented = false"
)


class _Refused(DatabaseError):
    """The database refused the data it was given: a batch's, which is then isolated."""

    def __init__(self, message: str, *, why: str) -> None:
        super().__init__(message)
        self.why = why


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
        codec: str,
    ) -> None:
        self._engine = engine
        self._run_id = run_id
        self._lock = lock
        self._stop = stop
        self._settings = settings
        self._codec = codec  # of the database's encoding: etl.database.server_codec
        self.write_seconds = 0.0  # time inside write transactions, for throughput

    def write(self, batch: Batch) -> list[CampaignResult]:
        """Commit a batch; if the database refuses its data, its campaigns one by one."""
        try:
            return self._retrying(partial(self._commit, batch.fetched, batch.others))
        except _Refused as exc:
            if len(batch.fetched) == 1 and not batch.others:
                return self.record([_refused(batch.fetched[0], exc)])
            logger.warning(
                "a batch of %d campaigns failed (%s); writing them one by one",
                len(batch.fetched),
                exc.why,
            )
        results: list[CampaignResult] = []
        for item in batch.fetched:
            try:
                results += self._retrying(partial(self._commit, [item], []))
            except _Refused as exc:
                results += self.record([_refused(item, exc)])
        return results + self.record(batch.others)

    def record(self, results: Sequence[CampaignResult]) -> list[CampaignResult]:
        """Record campaigns that bring no data: failed or skipped ones."""
        if not results:
            return []
        return self._retrying(partial(self._commit, [], results), doing="recording outcomes")

    def record_discovery(
        self, *, active: Sequence[CampaignStat], planned: Sequence[str]
    ) -> str | None:
        """The campaigns the run now sets out to sync, and what discovery found of them.
        Returns why the database refused what discovery found (a DBA's constraint or trigger
        on ``campaign_stats``), if it did: the run goes on without it."""
        doing = "recording the active campaigns"

        def record(_attempt: int) -> str | None:  # its statements are idempotent
            with self._transaction(doing=doing) as conn:
                return _discovered(conn, self._run_id, active=active, planned=planned)

        return self._retrying(record, doing=doing)

    def finish(
        self, *, outcome: RunOutcome, error: str | None, unrecorded: str
    ) -> tuple[RunTotals, float]:
        """Close the run, retried like any write: :func:`history.finish_run` records only what
        is missing and counts the totals again."""
        close = partial(self._close, outcome, error=error, unrecorded=unrecorded)
        return self._retrying(lambda _: close(), doing=_CLOSING)

    def close_after_failure(self, *, outcome: RunOutcome, error: str) -> None:
        """Record that the run ended on ``error``: one attempt (within the stop's grace after
        a stop), else a note on its lock for the run that closes it as abandoned."""
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

    @contextlib.contextmanager
    def _transaction(
        self, *, doing: str, closing_as: RunOutcome | None = None, locked: bool = True
    ) -> Iterator[Connection]:
        """One write transaction of the run: the lock checked (unless not ``locked``: a failed
        run closes itself, lock or no lock), the run's row held (:func:`history.hold`), its
        waits bounded (:func:`etl.database.bounded`)."""
        if locked and not self._stop.is_set():  # a stopped run closes itself, lock or no lock
            self._lock.ensure()
        with (
            self._engine.connect() as conn,
            bounded(conn, self._stop, doing=doing),
            conn.begin(),
        ):
            history.hold(conn, self._run_id, closing_as=closing_as)
            yield conn

    def _commit(
        self, fetched: Sequence[Fetched], others: Sequence[CampaignResult], attempt: int
    ) -> list[CampaignResult]:
        """Write campaigns in one transaction; on a retry, only what is not committed yet."""
        started = time.monotonic()
        with self._transaction(doing="writing a batch") as conn:
            done = _committed_before(conn, self._run_id, fetched, others) if attempt > 1 else []
            kept = {result.campaign_id for result in done}
            fetched = [item for item in fetched if item.campaign_id not in kept]
            applied = load.apply_snapshots(conn, [f.snapshot for f in fetched], run_id=self._run_id)
            results = [_succeeded(item, applied.counts[item.campaign_id]) for item in fetched]
            results += [_storable(o, self._codec) for o in others if o.campaign_id not in kept]
            history.record(conn, self._run_id, results)
        self.write_seconds += time.monotonic() - started
        for code in applied.new_codes:
            logger.warning(_UNDOCUMENTED, code)
        return done + results

    def _close(
        self, outcome: RunOutcome, *, error: str | None, unrecorded: str, locked: bool = True
    ) -> tuple[RunTotals, float]:
        # A stop that cancels it ends the run in sync's crash path, which closes it anyway.
        with self._transaction(doing=_CLOSING, closing_as=outcome, locked=locked) as conn:
            return history.finish_run(
                conn,
                self._run_id,
                outcome=outcome,
                error=_escaped(error, self._codec),
                unrecorded=_escaped(unrecorded, self._codec) or "",
            )

    def _retrying(self, action: Callable[[int], T], *, doing: str = "writing a batch") -> T:
        """``action(attempt)``, retried on a lost connection or a timeout. Raises
        :class:`_Refused` when the database refuses the data, :class:`InterruptedRun` on a
        stop, and :class:`DatabaseError` otherwise."""
        value, _ = retried(
            _policy(self._settings, self._stop, doing=doing),
            action,
            failures=DBAPIError,
            stop=self._stop,
            doing=doing,
            final=partial(_gave_up, self._engine.url, doing=doing),
        )
        return value


def _discovered(
    conn: Connection, run_id: int, *, active: Sequence[CampaignStat], planned: Sequence[str]
) -> str | None:
    history.plan(conn, run_id, planned)
    history.seen_active(conn, [stat.campaign_id for stat in active])
    mine = set(planned)
    try:
        with conn.begin_nested():
            # checked here, not at COMMIT: a DBA's deferred constraint too
            conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
            history.record_stats(conn, run_id, [s for s in active if s.campaign_id in mine])
    except DBAPIError as exc:
        if classify(exc) is not Failure.DATA:
            raise
        return reason(exc)
    return None


def _committed_before(
    conn: Connection, run_id: int, fetched: Sequence[Fetched], others: Sequence[CampaignResult]
) -> list[CampaignResult]:
    """What an earlier attempt of this write committed after all (its connection lost once
    COMMIT had reached the server): it stands, and is not written again."""
    ids = [item.campaign_id for item in fetched] + [other.campaign_id for other in others]
    done = history.recorded(conn, run_id, ids)
    if done:
        logger.info(
            "%d of the batch's %d campaigns were committed before the connection was lost; "
            "not writing them again",
            len(done),
            len(ids),
        )
    return done


def _policy(settings: WriteSettings, stop: Stop, *, doing: str) -> Retrying:
    def retryable(exc: BaseException) -> bool:
        lost = isinstance(exc, DBAPIError) and classify(exc) in (Failure.LOST, Failure.TIMEOUT)
        return lost and not stop.is_set()

    return database_retrying(
        attempts=settings.retry_attempts,
        initial_wait=settings.retry_wait,
        stop=stop,
        retryable=retryable,
        before_sleep=partial(_log_retry, doing=doing),
    )


def _gave_up(url: URL, exc: DBAPIError, attempts: int, *, doing: str) -> DatabaseError:
    said = failure_message(url, exc, doing=doing, attempts=attempts)
    if classify(exc) is Failure.DATA:
        return _Refused(said, why=reason(exc))
    return DatabaseError(said)


def _storable(result: CampaignResult, codec: str) -> CampaignResult:
    return dataclasses.replace(
        result,
        error=_escaped(result.error, codec),
        request_id=_escaped(result.request_id, codec, limit=logs.ID_LIMIT),
    )


def _escaped(said: str | None, codec: str, *, limit: int = logs.TEXT_LIMIT) -> str | None:
    """``said`` as the history keeps it (:func:`etl.logs.clean`), with every character
    ``codec`` (the database's encoding) cannot hold escaped, cut within ``limit``."""
    return None if said is None else logs.clean(said, limit=limit, codec=codec)


def _log_retry(state: RetryCallState, *, doing: str) -> None:
    exc = state.outcome.exception() if state.outcome else None
    assert isinstance(exc, DBAPIError)
    logger.warning(
        "database %s while %s (%s); retrying in %.1fs",
        classify(exc).value,
        doing,
        reason(exc),
        state.upcoming_sleep,
    )


def _succeeded(item: Fetched, counts: Counts) -> CampaignResult:
    return CampaignResult.succeeded(
        item.campaign_id,
        counts,
        attempts=item.attempts,
        duration=item.duration,
        http_status=item.http_status,
    )


def _refused(item: Fetched, exc: _Refused) -> CampaignResult:
    error = CampaignError(
        f"the database rejected this campaign's data: {exc.why}", campaign_id=item.campaign_id
    )
    return CampaignResult.failed(
        error, attempts=item.attempts, duration=item.duration, http_status=item.http_status
    )
