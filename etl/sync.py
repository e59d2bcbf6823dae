"""A sync run: lock, run history, and fetch → parse → load for every campaign.

Fetching runs on a bounded pool of worker threads; the calling thread is the only writer.
Results stream through a bounded queue, and whatever has arrived is written as one batch in
one transaction (a COPY-staged merge), so a slow API gives small batches and a fast one big
ones, and memory never grows with the number of campaigns. A campaign's data and its
outcome row commit together: every campaign is either fully written or not at all.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from etl import history, load, logs, migrate
from etl.client import RetryGate, ThuliumClient
from etl.config import ApiSettings, WriteSettings
from etl.database import Failure, classify, database_errors, failure_message, reason
from etl.errors import (
    EXIT_CAMPAIGN_FAILED,
    EXIT_OK,
    EXIT_TERMINATED,
    ApiError,
    AuthError,
    CampaignError,
    DatabaseError,
    InterruptedRun,
    PayloadError,
)
from etl.history import CampaignOutcome, RunTotals
from etl.lock import RunLock
from etl.records import Snapshot, parse_statuses
from etl.shards import Shard
from etl.stop import Stop

logger = logging.getLogger(__name__)

T = TypeVar("T")
_WORKER_DONE = object()
_MAX_ERRORS_IN_SUMMARY = 5
_LINGER = 0.25  # seconds a fetched campaign may wait for others to share its transaction


@dataclass(frozen=True)
class _Fetched:
    snapshot: Snapshot
    attempts: int
    duration: float
    http_status: int


@dataclass(kw_only=True)
class RunResult:
    """What a run did, as recorded in ``sync_runs``."""

    run_id: int
    outcome: str
    totals: RunTotals
    error: str | None = None
    write_seconds: float = 0.0  # time spent in database transactions, for throughput

    @property
    def exit_code(self) -> int:
        if self.outcome == "succeeded":
            return EXIT_OK
        if self.outcome == "interrupted":
            return EXIT_TERMINATED
        return EXIT_CAMPAIGN_FAILED


@dataclass
class _Tally:
    """Campaigns by outcome so far, and the first errors, for the run's outcome and summary."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, outcome: CampaignOutcome) -> None:
        if outcome.outcome == "succeeded":
            self.ok += 1
        elif outcome.outcome == "failed":
            self.failed += 1
            if len(self.errors) < _MAX_ERRORS_IN_SUMMARY:
                self.errors.append(f"{outcome.campaign_id}: {outcome.error}")
        else:
            self.skipped += 1


def _failure(
    exc: CampaignError, *, duration: float, http_status: int | None = None
) -> CampaignOutcome:
    return CampaignOutcome(
        campaign_id=exc.campaign_id,
        outcome="failed",
        attempts=exc.attempts,
        duration=duration,
        http_status=exc.status if isinstance(exc, ApiError) else http_status,
        request_id=exc.request_id,
        error=exc.message,
    )


class _Run:
    """The state of one run between taking the lock and recording its outcome."""

    def __init__(
        self,
        *,
        engine: Engine,
        url: URL,
        api: ApiSettings,
        campaign_ids: Sequence[str],
        run_id: int,
        lock: RunLock,
        stop: Stop,
        options: WriteSettings,
    ) -> None:
        self.engine, self.url, self.api, self.lock = engine, url, api, lock
        self.campaign_ids = campaign_ids
        self.run_id = run_id
        self.stop = stop
        self.options = options
        self.tally = _Tally()
        self.write_seconds = 0.0
        self.auth_failure = False
        self._todo: queue.SimpleQueue[str] = queue.SimpleQueue()
        # Bounded, so memory never grows with the number of campaigns, yet deep enough for
        # the workers to keep fetching while a batch is being written.
        self._results: queue.Queue[object] = queue.Queue(maxsize=max(256, 4 * api.concurrency))
        self._abort = threading.Event()
        self._handled: set[str] = set()

    # -- fetching (worker threads) ------------------------------------------------------
    def _work(self, client: ThuliumClient) -> None:
        try:
            while not self._abort.is_set():
                try:
                    campaign_id = self._todo.get_nowait()
                except queue.Empty:
                    return
                self._results.put(self._fetch(client, campaign_id))
        finally:
            self._results.put(_WORKER_DONE)

    def _fetch(self, client: ThuliumClient, campaign_id: str) -> _Fetched | CampaignOutcome:
        started = time.monotonic()
        try:
            fetched = client.fetch_statuses(campaign_id)
            try:
                snapshot = parse_statuses(fetched.body, campaign_id=campaign_id)
            except PayloadError as exc:
                exc.attempts = fetched.attempts
                return _failure(exc, duration=time.monotonic() - started,
                                http_status=fetched.status)
            return _Fetched(snapshot, fetched.attempts, time.monotonic() - started, fetched.status)
        except AuthError as exc:
            self._abort.set()
            self.auth_failure = True
            return _failure(exc, duration=time.monotonic() - started)
        except CampaignError as exc:
            return _failure(exc, duration=time.monotonic() - started)
        except InterruptedRun:
            return CampaignOutcome(
                campaign_id=campaign_id, outcome="skipped", error="the run was interrupted"
            )
        except Exception as exc:  # a bug must cost one campaign, not the night's run
            logger.exception("campaign %s: unexpected error", campaign_id)
            return CampaignOutcome(
                campaign_id=campaign_id,
                outcome="failed",
                duration=time.monotonic() - started,
                error=f"unexpected {type(exc).__name__}: {exc}",
            )

    # -- writing (this thread) ------------------------------------------------------------
    def execute(self) -> None:
        for campaign_id in self.campaign_ids:
            self._todo.put(campaign_id)
        gate = RetryGate(budget=self.api.retry.budget, max_rps=self.api.max_rps, stop=self.stop)
        client = ThuliumClient(self.api, gate=gate)
        workers = [
            threading.Thread(target=self._work, args=(client,), name=f"fetch-{n}", daemon=True)
            for n in range(min(self.api.concurrency, len(self.campaign_ids)))
        ]
        for worker in workers:
            worker.start()
        running = len(workers)
        fetched: list[_Fetched] = []
        failures: list[CampaignOutcome] = []
        rows, first_at = 0, 0.0
        while (running or fetched or failures) and not self.stop.is_set():
            # Batch what arrives within _LINGER of the first result: one transaction per
            # batch instead of one per campaign, at the cost of landing a moment later.
            pending = bool(fetched or failures)
            wait = max(0.0, first_at + _LINGER - time.monotonic()) if pending else 0.2
            try:
                item = self._results.get(timeout=wait) if running else None
            except queue.Empty:
                item = None
            if item is _WORKER_DONE:
                running -= 1
            elif isinstance(item, _Fetched):
                fetched.append(item)
                rows += len(item.snapshot.statuses)
            elif isinstance(item, CampaignOutcome):
                failures.append(item)
            if item is not None and not pending:
                first_at = time.monotonic()
            due = rows >= self.options.batch_rows or time.monotonic() - first_at >= _LINGER
            if (fetched or failures) and (due or not running):
                self._write(fetched, failures)
                fetched, failures, rows = [], [], 0
        if not self.stop.is_set():
            client.close()
        self._skip_the_rest()

    def _skip_the_rest(self) -> None:
        if self.stop.is_set():
            why = "the run was interrupted (SIGTERM) before this campaign was written"
        elif self.auth_failure:
            why = "not attempted: the API rejected the credentials (HTTP 401) earlier in this run"
        else:
            why = "not attempted"
        skipped = [
            CampaignOutcome(campaign_id=campaign_id, outcome="skipped", error=why)
            for campaign_id in self.campaign_ids
            if campaign_id not in self._handled
        ]
        if skipped:
            self._with_db_retry(lambda: self._commit([], skipped), doing="recording skips")

    def _write(self, fetched: list[_Fetched], failures: list[CampaignOutcome]) -> None:
        """Commit a batch; if the database refuses its data, isolate it campaign by campaign."""
        try:
            self._with_db_retry(lambda: self._commit(fetched, failures), doing="writing a batch")
            return
        except DBAPIError as exc:  # only Failure.DATA gets here
            if len(fetched) <= 1 and not failures:
                failed = [self._db_failure(item, exc) for item in fetched]
                self._with_db_retry(lambda: self._commit([], failed), doing="recording failures")
                return
            logger.warning("a batch of %d campaigns failed (%s); writing them one by one",
                           len(fetched), reason(exc))
        for item in fetched:
            self._write([item], [])
        if failures:
            self._with_db_retry(lambda: self._commit([], failures), doing="recording failures")

    def _db_failure(self, item: _Fetched, exc: DBAPIError) -> CampaignOutcome:
        return CampaignOutcome(
            campaign_id=item.snapshot.campaign_id,
            outcome="failed",
            attempts=item.attempts,
            duration=item.duration,
            error=f"the database rejected this campaign's data: {reason(exc)}",
        )

    def _commit(self, fetched: list[_Fetched], others: list[CampaignOutcome]) -> None:
        self.lock.ensure()
        started = time.monotonic()
        with self.engine.begin() as conn, self.stop.cancelling(_canceller(conn)):
            counts = load.apply_snapshots(conn, [item.snapshot for item in fetched])
            outcomes = [
                CampaignOutcome(
                    campaign_id=item.snapshot.campaign_id,
                    outcome="succeeded",
                    counts=counts[item.snapshot.campaign_id],
                    attempts=item.attempts,
                    duration=item.duration,
                    http_status=item.http_status,
                )
                for item in fetched
            ]
            outcomes.extend(others)
            history.record_outcomes(conn, self.run_id, outcomes)
        self.write_seconds += time.monotonic() - started
        for outcome in outcomes:
            self._handled.add(outcome.campaign_id)
            self.tally.add(outcome)
            _log_outcome(outcome)

    def _with_db_retry(self, action: Callable[[], T], *, doing: str) -> T:
        """Run ``action``, retrying a lost connection (restart, failover) or a timeout.

        Raises the driver's error when the database refuses the data (the caller isolates
        it), and DatabaseError when nothing this run can do will help.
        """
        attempts = self.options.db_attempts
        for attempt in range(1, attempts + 1):
            try:
                return action()
            except DBAPIError as exc:
                if self.stop.is_set():
                    raise InterruptedRun(f"stopped while {doing}") from None
                failure = classify(exc)
                if failure is Failure.DATA:
                    raise
                if failure is Failure.FATAL:
                    raise DatabaseError(failure_message(self.url, exc, doing=doing)) from None
                if attempt == attempts:
                    raise DatabaseError(
                        failure_message(self.url, exc, doing=doing, attempts=attempts)
                    ) from None
                wait = self.options.db_retry_wait * 2 ** (attempt - 1)
                logger.warning(
                    "database %s while %s (%s); retrying in %.1fs",
                    failure.value, doing, reason(exc), wait,
                )
                if self.stop.wait(wait):
                    raise InterruptedRun("stop requested while waiting for the database") from None
        raise AssertionError("unreachable")

    def outcome(self) -> tuple[str, str | None]:
        tally = self.tally
        if self.stop.is_set():
            state = "interrupted"
        elif tally.failed == 0 and tally.skipped == 0:
            state = "succeeded"
        elif tally.ok == 0:
            state = "failed"
        else:
            state = "partial"
        parts = []
        if self.auth_failure:
            parts.append("stopped at the first HTTP 401: the API rejected the credentials")
        if tally.failed:
            parts.append(f"{tally.failed} of {len(self.campaign_ids)} campaigns failed: "
                         + "; ".join(tally.errors)
                         + (" …" if tally.failed > len(tally.errors) else ""))
        if tally.skipped:
            parts.append(f"{tally.skipped} skipped")
        return state, (" | ".join(parts) or None)


def _canceller(connection: Connection) -> Callable[[], object]:
    """Cancels the statement running on ``connection`` (a stop must not wait for a lock)."""
    driver = connection.connection.driver_connection
    return lambda: driver.cancel_safe()  # type: ignore[union-attr]


def _log_outcome(outcome: CampaignOutcome) -> None:
    extra = {"campaign_id": outcome.campaign_id, "outcome": outcome.outcome}
    if outcome.outcome == "succeeded":
        c = outcome.counts
        logger.info(
            "campaign %s synced: %d inserted, %d updated, %d deleted, %d attempt(s), %.2fs",
            outcome.campaign_id, c.inserted, c.updated, c.deleted, outcome.attempts,
            outcome.duration, extra=extra,
        )
    elif outcome.outcome == "failed":
        request = f" (Thulium request_id {outcome.request_id})" if outcome.request_id else ""
        logger.error(
            "campaign %s failed after %d attempt(s): %s%s",
            outcome.campaign_id, outcome.attempts, outcome.error, request, extra=extra,
        )
    else:
        logger.warning("campaign %s skipped: %s", outcome.campaign_id, outcome.error, extra=extra)


def run_sync(
    engine: Engine,
    url: URL,
    api: ApiSettings,
    campaign_ids: Sequence[str],
    *,
    stop: Stop | None = None,
    options: WriteSettings | None = None,
    shard: Shard | None = None,
) -> RunResult:
    """Sync ``campaign_ids`` once; raises for whole-run failures, records per-campaign ones.

    Raises :class:`DatabaseError` if the database is unreachable or not migrated and
    :class:`~etl.errors.LockHeldError` if another sync is running; otherwise returns the
    recorded outcome (``succeeded``, ``partial``, ``failed`` or ``interrupted``).
    """
    stop = stop or Stop()
    options = options or WriteSettings()
    with database_errors(url, doing="checking the schema"), engine.connect() as conn:
        migrate.require_current(conn)
    lock = RunLock(engine, shard=shard)
    with database_errors(url, doing="taking the run lock"):
        lock.acquire()
    try:
        with database_errors(url, doing="starting the run"), engine.begin() as conn:
            abandoned = history.abandon_stale_runs(
                conn, shard=shard, reason="the process died without finishing (its lock was "
                "free when a later run started)",
            )
            run_id = history.start_run(conn, campaign_ids=campaign_ids, shard=shard)
        run = _Run(engine=engine, url=url, api=api, campaign_ids=campaign_ids, run_id=run_id,
                   lock=lock, stop=stop, options=options)
        with logs.context(run_id=run_id, shard=str(shard) if shard else None):
            for old in abandoned:
                logger.warning("run %d never finished: marked abandoned", old)
            logger.info("run %d started: %d campaign(s)%s, concurrency %d", run_id,
                        len(campaign_ids), f" of shard {shard}" if shard else "", api.concurrency)
            try:
                run.execute()
            except BaseException as exc:
                _finish_after_crash(engine, run, exc)
                raise
        state, error = run.outcome()
        with database_errors(url, doing="recording the run's outcome"), engine.begin() as conn:
            totals = history.finish_run(
                conn, run_id, outcome=state, error=error, unrecorded="not attempted"
            )
        return RunResult(run_id=run_id, outcome=state, totals=totals, error=error,
                         write_seconds=run.write_seconds)
    finally:
        lock.release()


def _finish_after_crash(engine: Engine, run: _Run, exc: BaseException) -> None:
    """Best effort: record why the run stopped, if the database still answers."""
    state = "interrupted" if isinstance(exc, InterruptedRun | KeyboardInterrupt) else "failed"
    message = str(exc) or type(exc).__name__
    try:
        with engine.begin() as conn:
            history.finish_run(
                conn, run.run_id, outcome=state, error=message,
                unrecorded=f"not attempted: the run stopped first ({message})",
            )
    except DBAPIError:
        logger.warning("could not record the outcome of run %d; the next run will mark it "
                       "abandoned", run.run_id)
