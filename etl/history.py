"""Run history: ``sync_runs``, campaign outcomes and each campaign's last attempt.

A campaign's outcome row is written in the same transaction as its data, so after any crash
the history says exactly what was committed. A run row stays ``running`` only while its
process lives; the next run, holding the same lock, marks leftovers ``abandoned``.

Every text written here passes :func:`etl.logs.clean` first: much of it comes from the API
(Thulium's messages, request ids, a proxy's headers) and must not be able to make Postgres
refuse the history row, nor leak a secret into it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from etl import __version__, logs
from etl.database import reason
from etl.errors import RunTakenOver
from etl.outcomes import CampaignOutcome, CampaignResult, Counts, RunOutcome, RunTotals
from etl.records import CampaignStat
from etl.schema import run_locks, sync_run_campaigns, sync_runs
from etl.shards import Shard

logger = logging.getLogger(__name__)


def _text(value: str | None, *, limit: int = logs.TEXT_LIMIT) -> str | None:
    return None if value is None else logs.clean(value, limit=limit)


#: Why a run is closed as abandoned when it left no word of how it ended.
DIED = "the process died without finishing (its lock was free when a later run started)"


def abandon_stale_runs(connection: Connection, *, shard: Shard | None) -> list[int]:
    """Mark runs still ``running`` as ``abandoned`` when the caller's lock proves them dead.

    An unsharded run's lock rules out every other run; a sharded one's rules out runs of its
    own shard, unsharded runs and runs of another number of shards, not the other shards of
    its own count (see :mod:`etl.lock`). Each is closed like a finished run: what it never
    recorded is recorded skipped, and its totals are counted from its rows. Its error says
    how it ended: in its own words if it left them on its lock's row (it could not record its
    outcome), else that its process died.
    """
    stale = sync_runs.c.outcome == RunOutcome.RUNNING
    if shard is not None:
        stale &= (
            sync_runs.c.shard.is_(None)
            | (sync_runs.c.shard == str(shard))
            | (func.split_part(sync_runs.c.shard, "/", 2) != str(shard.count))
        )
    # FOR UPDATE waits for a transaction of a run still writing (see hold()), then skips the
    # run if another sync closed it meanwhile: what is recorded below is counted after that.
    found = (
        select(sync_runs.c.run_id, run_locks.c.unrecorded_end)
        .outerjoin(run_locks, run_locks.c.unrecorded_run == sync_runs.c.run_id)
        .where(stale)
        .order_by(sync_runs.c.run_id)
        .with_for_update(of=sync_runs)
    )
    stale_runs = connection.execute(found).all()
    for run_id, last_words in stale_runs:
        finish_run(
            connection,
            run_id,
            outcome=RunOutcome.ABANDONED,
            error=f"it could not record how it ended: {last_words}" if last_words else DIED,
            unrecorded="never attempted: the run ended before it got to this campaign"
            if last_words
            else "never attempted: the run's process died before it got to this campaign",
        )
    return [run_id for run_id, _ in stale_runs]


def hold(connection: Connection, run_id: int, *, closing_as: RunOutcome | None = None) -> None:
    """Lock the run's row for the caller's transaction, and make sure the run is still ours.

    Every write transaction of a run starts here. A sync that takes over after this run's
    lock connection was lost waits for the transaction to end before it closes the run as
    abandoned (see :func:`abandon_stale_runs`), and a retry waits for an attempt whose COMMIT
    was in flight; once the run is closed, nothing more of it is written, except by a retry
    of its own closing (``closing_as``: the outcome it is closing with), whose first attempt
    may have committed unheard.
    """
    outcome = connection.execute(
        select(sync_runs.c.outcome)
        .where(sync_runs.c.run_id == run_id)
        .with_for_update(key_share=True)
    ).scalar_one()
    if outcome not in (RunOutcome.RUNNING, closing_as):
        raise RunTakenOver(
            f"run {run_id} was closed as {outcome} by another sync while it ran (its lock's "
            "connection had been lost): it stops here; the campaigns it recorded are kept"
        )


def start_run(connection: Connection, *, campaign_ids: Sequence[str], shard: Shard | None) -> int:
    run_id = connection.execute(
        insert(sync_runs)
        .values(
            campaigns_total=len(campaign_ids),
            campaign_ids=list(campaign_ids),
            shard=str(shard) if shard else None,
            version=__version__,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        .returning(sync_runs.c.run_id)
    ).scalar_one()
    return int(run_id)


# Both statements take the batch as arrays: one round trip and one statement per batch,
# whatever its size. The outcomes are stored as one row of arrays (see sync_run_batches);
# a plain UPDATE (not ON CONFLICT DO UPDATE) writes each campaign row once, without a
# separate row-lock record in the WAL.
# What both statements below insert: a run's next batch of outcomes, as parallel arrays.
_INSERT_BATCH = """INSERT INTO sync_run_batches (run_id, batch, campaign_id, outcome,
        rows_inserted, rows_updated, rows_deleted, attempts, duration_seconds, http_status,
        request_id, error)"""
_NEXT_BATCH = (  # .format() it with the SQL of the run id
    "coalesce((SELECT max(b.batch) FROM sync_run_batches AS b WHERE b.run_id = {}), 0) + 1"
)

_INSERT_OUTCOMES = text(
    f"""
    {_INSERT_BATCH}
    SELECT CAST(:run_id AS bigint),
        {_NEXT_BATCH.format("CAST(:run_id AS bigint)")},
        CAST(:campaign_ids AS text[]), CAST(:outcomes AS text[]), CAST(:inserted AS int[]),
        CAST(:updated AS int[]), CAST(:deleted AS int[]), CAST(:attempts AS int[]),
        CAST(:durations AS float8[]), CAST(:http_statuses AS int[]),
        CAST(:request_ids AS text[]), CAST(:errors AS text[])
    """
)
_LAST_ATTEMPTS = text(
    """
    WITH attempt (campaign_id, outcome, error) AS (
        SELECT * FROM unnest(
            CAST(:campaign_ids AS text[]), CAST(:outcomes AS text[]), CAST(:errors AS text[]))
    ), known AS (
        UPDATE campaigns AS c
        SET last_attempt_at = now(),
            last_attempt_outcome = a.outcome,
            last_error = a.error,
            last_synced_at = CASE WHEN a.outcome = :succeeded THEN now()
                                  ELSE c.last_synced_at END
        FROM attempt AS a
        WHERE c.campaign_id = a.campaign_id
        RETURNING c.campaign_id
    )
    INSERT INTO campaigns (campaign_id, last_attempt_at, last_attempt_outcome, last_error)
    SELECT a.campaign_id, now(), a.outcome, a.error FROM attempt AS a
    WHERE a.campaign_id NOT IN (SELECT campaign_id FROM known)
    """
).bindparams(succeeded=CampaignOutcome.SUCCEEDED)


def record(connection: Connection, run_id: int, outcomes: Sequence[CampaignResult]) -> None:
    """Write outcome rows and each campaign's last attempt, in the caller's transaction.

    A succeeded campaign's row always exists (the loader inserts new ones); a campaign that
    failed before it was ever synced gets its row here, with ``last_synced_at`` null.
    """
    if not outcomes:
        return
    columns = {
        "campaign_ids": [o.campaign_id for o in outcomes],
        "outcomes": [o.outcome for o in outcomes],
        "errors": [_text(o.error) for o in outcomes],
    }
    connection.execute(
        _INSERT_OUTCOMES,
        {
            **columns,
            "run_id": run_id,
            "inserted": [o.counts.inserted for o in outcomes],
            "updated": [o.counts.updated for o in outcomes],
            "deleted": [o.counts.deleted for o in outcomes],
            "attempts": [o.attempts for o in outcomes],
            "durations": [round(o.duration, 3) for o in outcomes],
            "http_statuses": [o.http_status for o in outcomes],
            "request_ids": [_text(o.request_id, limit=logs.ID_LIMIT) for o in outcomes],
        },
    )
    connection.execute(_LAST_ATTEMPTS, columns)


def recorded(
    connection: Connection, run_id: int, campaign_ids: Sequence[str]
) -> list[CampaignResult]:
    """What the run has already recorded of these campaigns, in their order.

    Called after :func:`hold`, which waited for any other transaction still writing this
    run's history (one whose connection was lost while its COMMIT was in flight), so what
    that one committed is seen here and not written twice.
    """
    rows = connection.execute(
        select(sync_run_campaigns).where(
            sync_run_campaigns.c.run_id == run_id,
            sync_run_campaigns.c.campaign_id.in_(campaign_ids),
        )
    ).mappings()
    found = {
        row["campaign_id"]: CampaignResult(
            campaign_id=row["campaign_id"],
            outcome=CampaignOutcome(row["outcome"]),
            counts=Counts(row["rows_inserted"], row["rows_updated"], row["rows_deleted"]),
            attempts=row["attempts"],
            duration=row["duration_seconds"],
            http_status=row["http_status"],
            request_id=row["request_id"],
            error=row["error"],
        )
        for row in rows
    }
    return [found[campaign_id] for campaign_id in campaign_ids if campaign_id in found]


# The campaigns a run planned but never recorded, as one batch of skipped rows; returns
# their ids, whose last attempt is then recorded as skipped too, as a running run records it.
_RECORD_UNRECORDED = text(
    f"""
    {_INSERT_BATCH}
    SELECT r.run_id,
        {_NEXT_BATCH.format("r.run_id")},
        m.ids,
        array_fill(CAST(:skipped AS text), ARRAY[cardinality(m.ids)]),
        array_fill(0, ARRAY[cardinality(m.ids)]),
        array_fill(0, ARRAY[cardinality(m.ids)]),
        array_fill(0, ARRAY[cardinality(m.ids)]),
        array_fill(0, ARRAY[cardinality(m.ids)]),
        array_fill(CAST(0 AS float8), ARRAY[cardinality(m.ids)]),
        array_fill(CAST(NULL AS int), ARRAY[cardinality(m.ids)]),
        array_fill(CAST(NULL AS text), ARRAY[cardinality(m.ids)]),
        array_fill(CAST(:reason AS text), ARRAY[cardinality(m.ids)])
    FROM sync_runs AS r
    CROSS JOIN LATERAL (
        SELECT array_agg(planned.id ORDER BY planned.ord) AS ids
        FROM unnest(r.campaign_ids) WITH ORDINALITY AS planned (id, ord)
        WHERE planned.id NOT IN (
            SELECT c.campaign_id FROM sync_run_campaigns AS c WHERE c.run_id = r.run_id
        )
    ) AS m
    WHERE r.run_id = :run_id AND m.ids IS NOT NULL
    RETURNING campaign_id
    """
).bindparams(skipped=CampaignOutcome.SKIPPED)
# Totals are counted from the per-campaign rows, so they always add up to them. Runs from
# before the plan was recorded (campaign_ids null) keep the total they started with.
_CLOSE = text(
    """
    UPDATE sync_runs AS r
    SET outcome = :outcome, finished_at = now(), error = :error,
        campaigns_total = CASE WHEN r.campaign_ids IS NULL THEN r.campaigns_total
                               ELSE t.total END,
        campaigns_ok = t.ok, campaigns_failed = t.failed, campaigns_skipped = t.skipped,
        rows_inserted = t.inserted, rows_updated = t.updated, rows_deleted = t.deleted
    FROM (
        SELECT count(*) AS total,
               count(*) FILTER (WHERE outcome = :succeeded) AS ok,
               count(*) FILTER (WHERE outcome = :failed) AS failed,
               count(*) FILTER (WHERE outcome = :skipped) AS skipped,
               coalesce(sum(rows_inserted), 0) AS inserted,
               coalesce(sum(rows_updated), 0) AS updated,
               coalesce(sum(rows_deleted), 0) AS deleted
        FROM sync_run_campaigns WHERE run_id = :run_id
    ) AS t
    WHERE r.run_id = :run_id
    RETURNING r.campaigns_total, r.campaigns_ok, r.campaigns_failed, r.campaigns_skipped,
        r.rows_inserted, r.rows_updated, r.rows_deleted,
        extract(epoch FROM r.finished_at) AS finished
    """
).bindparams(
    succeeded=CampaignOutcome.SUCCEEDED,
    failed=CampaignOutcome.FAILED,
    skipped=CampaignOutcome.SKIPPED,
)


def finish_run(
    connection: Connection,
    run_id: int,
    *,
    outcome: RunOutcome,
    error: str | None,
    unrecorded: str,
) -> tuple[RunTotals, float]:
    """Close a run: record its unrecorded campaigns as skipped (``unrecorded`` says why),
    count its totals from its rows; return them, and when it finished (Unix time, by the
    database's clock, like every other timestamp of the history)."""
    why = _text(unrecorded)
    skipped = connection.execute(_RECORD_UNRECORDED, {"run_id": run_id, "reason": why}).scalar()
    if skipped:
        _skip_last_attempts(connection, run_id, skipped, why=why)
    row = (
        connection.execute(_CLOSE, {"run_id": run_id, "outcome": outcome, "error": _text(error)})
        .one()
        ._mapping
    )
    totals = RunTotals(**{f.name: row[f.name] for f in dataclasses.fields(RunTotals)})
    return totals, float(row["finished"])


def _skip_last_attempts(
    connection: Connection, run_id: int, campaign_ids: list[str], *, why: str | None
) -> None:
    """Record the campaigns' last attempt as skipped, if ``campaigns`` lets us: a run often
    closes after the database failed it (a lock held on ``campaigns``, say), and its
    outcome matters more than this, so a refusal is logged and the run still closes."""
    try:
        with connection.begin_nested():
            connection.execute(
                _LAST_ATTEMPTS,
                {
                    "campaign_ids": campaign_ids,
                    "outcomes": [CampaignOutcome.SKIPPED] * len(campaign_ids),
                    "errors": [why] * len(campaign_ids),
                },
            )
    except DBAPIError as exc:
        if connection.invalidated:
            raise
        logger.warning(
            "run %d: could not record the last attempt of %d campaign(s) it never reached: %s",
            run_id,
            len(campaign_ids),
            reason(exc),
        )


def recent_runs(connection: Connection, *, limit: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(sync_runs).order_by(sync_runs.c.run_id.desc()).limit(limit)
    ).mappings()
    return [dict(row) for row in rows]


def run_campaigns(connection: Connection, run_id: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(sync_run_campaigns)
        .where(sync_run_campaigns.c.run_id == run_id)
        .order_by(sync_run_campaigns.c.outcome, sync_run_campaigns.c.campaign_id)
    ).mappings()
    return [dict(row) for row in rows]


def last_success(connection: Connection, *, shard: Shard | None) -> float | None:
    """When the last succeeded run of ``shard`` (or of no shard) finished, as Unix time."""
    finished = connection.execute(
        select(func.max(sync_runs.c.finished_at)).where(
            sync_runs.c.outcome == RunOutcome.SUCCEEDED,
            sync_runs.c.shard.is_(None) if shard is None else sync_runs.c.shard == str(shard),
        )
    ).scalar_one()
    return None if finished is None else float(finished.timestamp())


def plan(connection: Connection, run_id: int, campaign_ids: Sequence[str]) -> None:
    """Record what the run now sets out to sync (after discovery decided it)."""
    connection.execute(
        update(sync_runs)
        .where(sync_runs.c.run_id == run_id)
        .values(campaign_ids=list(campaign_ids), campaigns_total=len(campaign_ids))
    )


_SEEN_ACTIVE = text(
    """
    WITH listed AS (
        INSERT INTO campaigns (campaign_id, last_seen_active_at)
        SELECT unnest(CAST(:active AS text[])), now()
        ON CONFLICT (campaign_id) DO UPDATE
        SET last_seen_active_at = now(), inactive_since = NULL
    )
    UPDATE campaigns
    SET inactive_since = now()
    WHERE last_seen_active_at IS NOT NULL AND inactive_since IS NULL
      AND campaign_id <> ALL(CAST(:active AS text[]))
    """
)
_STATS = text(
    """
    INSERT INTO campaign_stats (run_id, campaign_id, records_count, completion_percent)
    SELECT CAST(:run_id AS bigint), s.campaign_id, s.records_count, s.completion_percent
    FROM unnest(CAST(:ids AS text[]), CAST(:counts AS bigint[]), CAST(:percents AS float8[]))
        AS s (campaign_id, records_count, completion_percent)
    ON CONFLICT (run_id, campaign_id) DO NOTHING
    """
)


def seen_active(connection: Connection, active: Sequence[str]) -> None:
    """Every ``active`` campaign was seen active now, and any other once seen is inactive
    since now (if it was not already)."""
    connection.execute(_SEEN_ACTIVE, {"active": list(active)})


def record_stats(connection: Connection, run_id: int, stats: Sequence[CampaignStat]) -> None:
    """What discovery said of this run's campaigns, kept for charting progress."""
    connection.execute(
        _STATS,
        {
            "run_id": run_id,
            "ids": [s.campaign_id for s in stats],
            "counts": [s.records_count for s in stats],
            "percents": [s.completion_percent for s in stats],
        },
    )
