"""Run history: ``sync_runs``, ``sync_run_campaigns`` and each campaign's last attempt.

A campaign's outcome row is written in the same transaction as its data, so after any crash
the history says exactly what was committed. A run row stays ``running`` only while its
process lives; the next run, holding the same lock, marks leftovers ``abandoned``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, case, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from etl import __version__
from etl.load import Counts
from etl.schema import campaigns, sync_run_campaigns, sync_runs
from etl.shards import Shard

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CampaignOutcome:
    """What happened to one campaign in one run."""

    campaign_id: str
    outcome: str  # succeeded | failed | skipped
    counts: Counts = field(default_factory=Counts)
    attempts: int = 0
    duration: float = 0.0
    http_status: int | None = None
    request_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunTotals:
    campaigns_total: int
    campaigns_ok: int
    campaigns_failed: int
    campaigns_skipped: int
    rows_inserted: int
    rows_updated: int
    rows_deleted: int


def abandon_stale_runs(connection: Connection, *, shard: Shard | None, reason: str) -> list[int]:
    """Mark runs still ``running`` as ``abandoned`` when the caller's locks prove them dead.

    An unsharded run holds the global lock exclusively, so no other run can be alive; a
    sharded one rules out runs of its own shard and unsharded runs, not other shards.
    """
    stale = sync_runs.c.outcome == "running"
    if shard is not None:
        stale &= sync_runs.c.shard.is_(None) | (sync_runs.c.shard == str(shard))
    result = connection.execute(
        update(sync_runs)
        .where(stale)
        .values(outcome="abandoned", finished_at=func.now(), error=reason)
        .returning(sync_runs.c.run_id)
    )
    return [run_id for (run_id,) in result]


def start_run(connection: Connection, *, campaigns_total: int, shard: Shard | None) -> int:
    run_id = connection.execute(
        insert(sync_runs)
        .values(
            campaigns_total=campaigns_total,
            shard=str(shard) if shard else None,
            version=__version__,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        .returning(sync_runs.c.run_id)
    ).scalar_one()
    return int(run_id)


def record_outcomes(
    connection: Connection, run_id: int, outcomes: Sequence[CampaignOutcome]
) -> None:
    """Write outcome rows and each campaign's last attempt, in the caller's transaction."""
    if not outcomes:
        return
    connection.execute(
        insert(sync_run_campaigns),
        [
            {
                "run_id": run_id,
                "campaign_id": o.campaign_id,
                "outcome": o.outcome,
                "rows_inserted": o.counts.inserted,
                "rows_updated": o.counts.updated,
                "rows_deleted": o.counts.deleted,
                "attempts": o.attempts,
                "duration_seconds": round(o.duration, 3),
                "http_status": o.http_status,
                "request_id": o.request_id,
                "error": o.error,
            }
            for o in outcomes
        ],
    )
    # One write per campaign: its last attempt and, when it succeeded, its last sync.
    stmt = pg_insert(campaigns).values(last_attempt_at=func.now())
    stmt = stmt.on_conflict_do_update(
        index_elements=[campaigns.c.campaign_id],
        set_={
            "last_attempt_at": stmt.excluded.last_attempt_at,
            "last_attempt_outcome": stmt.excluded.last_attempt_outcome,
            "last_error": stmt.excluded.last_error,
            # a succeeded campaign always conflicts: the loader inserted it if it was new
            "last_synced_at": case(
                (stmt.excluded.last_attempt_outcome == "succeeded", func.now()),
                else_=campaigns.c.last_synced_at,
            ),
        },
    )
    connection.execute(
        stmt,
        [
            {
                "campaign_id": o.campaign_id,
                "last_attempt_outcome": o.outcome,
                "last_error": o.error,
            }
            for o in outcomes
        ],
    )


def finish_run(
    connection: Connection, run_id: int, *, outcome: str, totals: RunTotals, error: str | None
) -> None:
    connection.execute(
        update(sync_runs)
        .where(sync_runs.c.run_id == run_id)
        .values(outcome=outcome, finished_at=func.now(), error=error, **vars(totals))
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
