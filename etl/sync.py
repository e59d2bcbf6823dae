"""A sync run: take the lock, run the pipeline, record the outcome.

The pipeline is :class:`~etl.fetch.Fetcher` (workers fetch and validate campaigns) →
:func:`~etl.batches.batches` (which campaigns share a transaction) →
:class:`~etl.writer.Writer` (each campaign's data and outcome row commit together). The
calling thread is the only writer. Campaigns the run never got to (a 401, a stop) are
recorded skipped, and the run's totals are counted from what it recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from etl import discovery, history, logs, migrate, shards
from etl.batches import batches
from etl.client import ThuliumClient
from etl.config import SyncCommand
from etl.database import bounded, database_errors, reason, server_codec
from etl.errors import EtlError, InterruptedRun, LockHeldError
from etl.fetch import Fetcher, queued_weight
from etl.lock import RunLock
from etl.outcomes import CampaignResult, Halt, RunOutcome, RunReport, RunTotals
from etl.report import Tally, log_result
from etl.retry import RetryGate
from etl.shards import Shard
from etl.stop import Stop
from etl.writer import Writer

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """What a run did, as recorded in ``sync_runs``."""

    run_id: int
    outcome: RunOutcome
    totals: RunTotals
    error: str | None = None
    write_seconds: float = 0.0  # time spent in database transactions, for throughput


class _Run:
    """One run between taking the lock and recording its outcome."""

    def __init__(
        self,
        settings: SyncCommand,
        campaign_ids: Sequence[str],
        *,
        run_id: int,
        writer: Writer,
        stop: Stop,
        report: RunReport,
    ) -> None:
        self.run_id = run_id
        self.settings = settings
        self.report = report
        self.campaign_ids = campaign_ids
        self.stop = stop
        self.writer = writer
        self.tally = Tally(total=len(campaign_ids))
        self.started = time.monotonic()
        self.handled: set[str] = set()
        self.halted: Halt | None = None

    def execute(self) -> None:
        settings = self.settings
        gate = RetryGate(
            budget=settings.retry.budget, max_rps=settings.fetch.max_rps, stop=self.stop
        )
        with ThuliumClient(settings.api, settings.retry, gate, counts=self.report.http) as client:
            self._discover(client)
            with Fetcher(
                client,
                self.campaign_ids,
                concurrency=settings.fetch.concurrency,
                stop=self.stop,
                max_queued=queued_weight(settings.write.batch_rows),
            ) as results:
                for batch in batches(results, max_rows=settings.write.batch_rows, stop=self.stop):
                    self._recorded(self.writer.write(batch))
                self.halted = results.halted
        self._recorded(self.writer.record(self._never_attempted()))

    def finish(self) -> RunResult:
        """Close the run with the outcome its campaigns add up to, and report it."""
        outcome = self.tally.outcome(interrupted=self.stop.is_set())
        error = self.tally.summary(halted=self.halted)
        totals, finished_at = self.writer.finish(
            outcome=outcome, error=error, unrecorded=self.skip_reason()
        )
        self.report.outcome, self.report.totals = outcome, totals
        self.report.finished_at = finished_at
        return RunResult(
            run_id=self.run_id,
            outcome=outcome,
            totals=totals,
            error=error,
            write_seconds=self.writer.write_seconds,
        )

    def _discover(self, client: ThuliumClient) -> None:
        """With ``THULIUM_CAMPAIGNS=active``: the campaigns this run syncs, from Thulium."""
        selection = self.settings.campaigns.selection
        if not selection.active:
            return
        active = discovery.discover(client)
        self.campaign_ids = discovery.campaigns(selection, active, self.settings.shards.shard)
        self.tally.total = len(self.campaign_ids)
        refused = self.writer.record_discovery(active=active, planned=self.campaign_ids)
        log = logger.info if active else logger.warning
        log("discovery: %d active campaign(s); this run syncs %d", len(active), self.tally.total)
        if refused:
            problem = f"the database refused what discovery found (campaign_stats): {refused}"
            logger.error("%s; the run goes on without it", problem)
            self.tally.problems.append(problem)

    def skip_reason(self) -> str:
        """Why a campaign this run never got to is recorded skipped."""
        if self.stop.is_set():
            return "the run was interrupted (SIGTERM) before this campaign was written"
        if self.halted:
            return f"not attempted: {self.halted.value}"
        return "not attempted"

    def _never_attempted(self) -> list[CampaignResult]:
        why = self.skip_reason()
        return [
            CampaignResult.skipped(campaign_id, why)
            for campaign_id in self.campaign_ids
            if campaign_id not in self.handled
        ]

    def _recorded(self, results: Iterable[CampaignResult]) -> None:
        for result in results:
            self.handled.add(result.campaign_id)
            self.tally.add(result)
            log_result(result)
        self.report.totals = self.tally.totals()  # until the run counts them from its rows
        logs.status(self.tally.progress(elapsed=time.monotonic() - self.started))


def run_sync(engine: Engine, settings: SyncCommand, *, stop: Stop | None = None) -> RunResult:
    """Sync the configured campaigns (this run's shard of them) once, and report it.

    Raises :class:`~etl.errors.DatabaseError` if the database is unreachable or not
    migrated and :class:`~etl.errors.LockHeldError` if another sync is running; records
    per-campaign failures and returns the run's outcome. Every run that got past the lock
    (or failed before it) reports its metrics, if configured.
    """
    report = RunReport(
        shard=settings.shards.shard, schema=settings.database.schema, started=time.monotonic()
    )
    stop = stop or Stop()
    try:
        result = _sync(engine, settings, stop, report)
    except LockHeldError:
        if stop.is_set():
            raise InterruptedRun("stopped before the run began") from None
        raise  # another run is doing the work, and reports it
    except BaseException as exc:
        report.outcome = _outcome_of(exc, stop)
        _export_metrics(engine, settings, report, stop=stop)
        if stop.is_set() and isinstance(exc, EtlError) and not isinstance(exc, InterruptedRun):
            raise InterruptedRun(f"stopped; then {exc}") from exc  # a stop's exit code
        raise
    _export_metrics(engine, settings, report, stop=stop)
    return result


def _sync(engine: Engine, settings: SyncCommand, stop: Stop, report: RunReport) -> RunResult:
    shard = settings.shards.shard
    campaign_ids = shards.select(settings.campaigns.selection.ids, shard)
    doing = "checking the schema"
    with (
        database_errors(engine, doing=doing),
        engine.connect() as conn,
        bounded(conn, stop, doing=doing),
    ):
        migrate.require_current(conn, schema=settings.database.schema)
    lock = RunLock(engine, shard=shard, stop=stop)
    with database_errors(engine, doing="taking the run lock"):
        lock.acquire()
    try:
        doing = "starting the run"
        stop.check(doing)
        with (
            database_errors(engine, doing=doing),
            engine.connect() as conn,
            bounded(conn, stop, doing=doing),
            conn.begin(),
        ):
            abandoned = history.abandon_stale_runs(conn, shard=shard)
            run_id = history.start_run(conn, campaign_ids=campaign_ids, shard=shard)
            codec = server_codec(conn)
        writer = Writer(
            engine, run_id=run_id, lock=lock, stop=stop, settings=settings.write, codec=codec
        )
        run = _Run(settings, campaign_ids, run_id=run_id, writer=writer, stop=stop, report=report)
        with logs.context(run_id=run_id, shard=str(shard) if shard else None):
            _announce(run_id, abandoned, campaign_ids, shard, settings)
            try:
                run.execute()
                return run.finish()
            except BaseException as exc:
                outcome = _outcome_of(exc, stop)
                run.writer.close_after_failure(
                    outcome=outcome, error=str(exc) or type(exc).__name__
                )
                raise
            finally:
                logs.status("")
    finally:
        lock.release()


def _export_metrics(
    engine: Engine, settings: SyncCommand, report: RunReport, *, stop: Stop
) -> None:
    """Report the run to Prometheus, if configured (imported only then); a stop requested
    meanwhile cuts the reporting short."""
    if not (settings.metrics.file or settings.metrics.pushgateway_url):
        return
    from etl import metrics

    report.duration = time.monotonic() - report.started
    report.finished_at = report.finished_at or time.time()  # not recorded: it crashed
    doing = "reading the last success"
    try:
        with engine.connect() as conn, bounded(conn, stop, doing=doing):
            report.last_success = history.last_success(conn, shard=report.shard)
    except (DBAPIError, InterruptedRun) as exc:
        why = reason(exc) if isinstance(exc, DBAPIError) else str(exc)
        logger.warning("metrics: the last success is unknown, the database failed: %s", why)
    metrics.export(settings.metrics, report, stop=stop)


def _announce(
    run_id: int,
    abandoned: Sequence[int],
    campaign_ids: Sequence[str],
    shard: Shard | None,
    settings: SyncCommand,
) -> None:
    for old in abandoned:
        logger.warning("run %d never finished: marked abandoned", old)
    logger.info(
        "run %d started: %d campaign(s)%s, concurrency %d",
        run_id,
        len(campaign_ids),
        f" of shard {shard}" if shard else "",
        settings.fetch.concurrency,
    )


def _outcome_of(exc: BaseException, stop: Stop) -> RunOutcome:
    """A run that ended on ``exc``: interrupted by a stop, failed by anything else."""
    stopped = stop.is_set() or isinstance(exc, InterruptedRun | KeyboardInterrupt)
    return RunOutcome.INTERRUPTED if stopped else RunOutcome.FAILED
