"""Apply campaign snapshots to Postgres: a COPY-staged merge that leaves unchanged rows alone.

The snapshots of a batch are copied into an unlogged temporary table, then merged with a
handful of set-based statements: changed or revived rows are updated, new ones inserted,
vanished ones soft-deleted. Rows whose payload did not change are never touched, so a
re-sync with no changes writes (and WAL-logs) nothing in ``statuses``. The caller owns the
transaction: every snapshot of a batch is applied, or none.

The history of statuses (``status_history``, one row per version) is written by the same
statements: each one's ``RETURNING`` rows close the changed statuses' open versions and open
the new ones, so ``statuses`` and its history can never disagree, and an unchanged re-sync
writes nothing to either. (The statements of one WITH run in no set order; the constraint
that allows one open version per status is checked at commit.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from etl.database import driver_errors
from etl.outcomes import Counts
from etl.records import Snapshot

_STAGE = "etl_stage_statuses"
_STAGE_DDL = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (
    campaign_id text NOT NULL,
    status_id text NOT NULL,
    system_status text NOT NULL,
    dictionary_status_id bigint,
    name text NOT NULL,
    PRIMARY KEY (campaign_id, status_id)
) ON COMMIT DELETE ROWS
"""
_COLUMNS = "campaign_id, status_id, system_status, dictionary_status_id, name"

# Known campaigns are not touched here (no write, no WAL): the run history records when
# each was last synced, in the same transaction.
_NEW_CAMPAIGNS = text(
    """
    INSERT INTO campaigns (campaign_id)
    SELECT unnest(CAST(:ids AS text[]))
    ON CONFLICT (campaign_id) DO NOTHING
    """
)
_NEW_SYSTEM_STATUSES = text(
    f"""
    INSERT INTO system_statuses (code, documented)
    SELECT DISTINCT system_status, false FROM {_STAGE}
    ON CONFLICT (code) DO NOTHING
    RETURNING code
    """
)
# The history statements, attached to each merge statement's RETURNING rows (`rows`).
_CLOSE_VERSIONS = """
    closed AS (
        UPDATE status_history AS h
        SET valid_to = now(), closed_by_run = CAST(:run_id AS bigint)
        FROM rows AS r
        WHERE h.campaign_id = r.campaign_id AND h.status_id = r.status_id
          AND h.valid_to IS NULL
    )"""
_OPEN_VERSIONS = f"""
    opened AS (
        INSERT INTO status_history ({_COLUMNS}, valid_from, opened_by_run)
        SELECT r.campaign_id, r.status_id, r.system_status, r.dictionary_status_id, r.name,
               now(), CAST(:run_id AS bigint)
        FROM rows AS r
    )"""
_COUNT = "SELECT campaign_id, count(*) FROM rows GROUP BY campaign_id"

# Changed payload, or a status that comes back after being deleted. The WHERE clause is
# the prefilter: rows that match neither are not locked, rewritten or WAL-logged. A changed
# status's open version closes and a new one opens; a revived one has none open to close.
# Naming the batch's campaigns (implied by the join) lets Postgres read only their rows by
# the primary key; without it, on a table without fresh statistics, it hashed all of
# `statuses` for every batch.
_UPDATE_CHANGED = text(
    f"""
    WITH rows AS (
        UPDATE statuses AS t
        SET system_status = s.system_status,
            dictionary_status_id = s.dictionary_status_id,
            name = s.name,
            updated_at = now(),
            deleted_at = NULL
        FROM {_STAGE} AS s
        WHERE t.campaign_id = s.campaign_id AND t.status_id = s.status_id
          AND t.campaign_id = ANY(CAST(:ids AS text[]))
          AND ((t.system_status, t.dictionary_status_id, t.name)
                IS DISTINCT FROM (s.system_status, s.dictionary_status_id, s.name)
               OR t.deleted_at IS NOT NULL)
        RETURNING t.campaign_id, t.status_id, t.system_status, t.dictionary_status_id, t.name
    ), {_CLOSE_VERSIONS}, {_OPEN_VERSIONS}
    {_COUNT}
    """
)
_INSERT_NEW = text(
    f"""
    WITH rows AS (
        INSERT INTO statuses ({_COLUMNS}, first_seen_at, updated_at)
        SELECT s.campaign_id, s.status_id, s.system_status, s.dictionary_status_id, s.name,
               now(), now()
        FROM {_STAGE} AS s
        WHERE NOT EXISTS (
            SELECT 1 FROM statuses AS t
            WHERE t.campaign_id = s.campaign_id AND t.status_id = s.status_id
        )
        ON CONFLICT (campaign_id, status_id) DO NOTHING
        RETURNING {_COLUMNS}
    ), {_OPEN_VERSIONS}
    {_COUNT}
    """
)
_SOFT_DELETE = text(
    f"""
    WITH rows AS (
        UPDATE statuses AS t
        SET deleted_at = now()
        WHERE t.campaign_id = ANY(CAST(:ids AS text[])) AND t.deleted_at IS NULL
          AND NOT EXISTS (
              SELECT 1 FROM {_STAGE} AS s
              WHERE s.campaign_id = t.campaign_id AND s.status_id = t.status_id
          )
        RETURNING t.campaign_id, t.status_id
    ), {_CLOSE_VERSIONS}
    {_COUNT}
    """
)


def _stage(connection: Connection, snapshots: Sequence[Snapshot]) -> None:
    """COPY every status of the batch into the session's temporary staging table."""
    # A no-op once the pooled connection has the table; its rows vanish at every commit and
    # rollback, and unlike TRUNCATE or DROP it writes nothing to the catalog (or the WAL).
    connection.exec_driver_sql(_STAGE_DDL)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    statement = f"COPY {_STAGE} ({_COLUMNS}) FROM STDIN"
    with driver_errors(statement), cursor.copy(statement) as copy:
        for snapshot in snapshots:
            campaign_id = snapshot.campaign_id
            for status in snapshot.statuses:
                copy.write_row((campaign_id, *status))


def _per_campaign(
    connection: Connection, statement: object, *, ids: list[str], run_id: int | None
) -> dict[str, int]:
    result = connection.execute(statement, {"ids": ids, "run_id": run_id})  # type: ignore[call-overload]
    return {campaign_id: count for campaign_id, count in result}


@dataclass(frozen=True)
class Applied:
    """What applying a batch's snapshots changed, once its transaction commits."""

    counts: dict[str, Counts] = field(default_factory=dict)  # per campaign
    new_codes: tuple[str, ...] = ()  # system_status codes stored for the first time


def apply_snapshots(
    connection: Connection, snapshots: Sequence[Snapshot], *, run_id: int | None
) -> Applied:
    """Merge complete snapshots into ``statuses`` and its history, in the caller's
    transaction; ``run_id`` is the run the new and closed versions belong to.

    Each snapshot is the whole truth for its campaign: statuses it lacks are soft-deleted.
    Returns the rows inserted, updated (including revived) and deleted per campaign, and the
    undocumented system_status codes it added (for the caller to report once it commits).
    """
    if not snapshots:
        return Applied()
    ids = [snapshot.campaign_id for snapshot in snapshots]
    _stage(connection, snapshots)
    connection.execute(_NEW_CAMPAIGNS, {"ids": ids})
    new_codes = tuple(connection.execute(_NEW_SYSTEM_STATUSES).scalars())
    updated = _per_campaign(connection, _UPDATE_CHANGED, ids=ids, run_id=run_id)
    inserted = _per_campaign(connection, _INSERT_NEW, ids=ids, run_id=run_id)
    deleted = _per_campaign(connection, _SOFT_DELETE, ids=ids, run_id=run_id)
    counts = {
        campaign_id: Counts(
            inserted=inserted.get(campaign_id, 0),
            updated=updated.get(campaign_id, 0),
            deleted=deleted.get(campaign_id, 0),
        )
        for campaign_id in ids
    }
    return Applied(counts, new_codes)
