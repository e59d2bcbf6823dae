"""Apply campaign snapshots to Postgres: a COPY-staged merge that leaves unchanged rows alone.

The snapshots of a batch are copied into an unlogged temporary table, then merged with a
handful of set-based statements: changed or revived rows are updated, new ones inserted,
vanished ones soft-deleted. Rows whose payload did not change are never touched, so a
re-sync with no changes writes (and WAL-logs) nothing in ``statuses``. The caller owns the
transaction: every snapshot of a batch is applied, or none.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Connection, text

from etl.outcomes import Counts
from etl.records import Snapshot

logger = logging.getLogger(__name__)

_STAGE = "etl_stage_statuses"
_STAGE_DDL = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (
    campaign_id text NOT NULL,
    status_id text NOT NULL,
    system_status text NOT NULL,
    dictionary_status_id bigint,
    name text NOT NULL
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
# Changed payload, or a status that comes back after being deleted. The WHERE clause is
# the prefilter: rows that match neither are not locked, rewritten or WAL-logged.
_UPDATE_CHANGED = text(
    f"""
    WITH changed AS (
        UPDATE statuses AS t
        SET system_status = s.system_status,
            dictionary_status_id = s.dictionary_status_id,
            name = s.name,
            updated_at = now(),
            deleted_at = NULL
        FROM {_STAGE} AS s
        WHERE t.campaign_id = s.campaign_id AND t.status_id = s.status_id
          AND ((t.system_status, t.dictionary_status_id, t.name)
                IS DISTINCT FROM (s.system_status, s.dictionary_status_id, s.name)
               OR t.deleted_at IS NOT NULL)
        RETURNING t.campaign_id
    )
    SELECT campaign_id, count(*) FROM changed GROUP BY campaign_id
    """
)
_INSERT_NEW = text(
    f"""
    WITH added AS (
        INSERT INTO statuses ({_COLUMNS}, first_seen_at, updated_at)
        SELECT s.campaign_id, s.status_id, s.system_status, s.dictionary_status_id, s.name,
               now(), now()
        FROM {_STAGE} AS s
        WHERE NOT EXISTS (
            SELECT 1 FROM statuses AS t
            WHERE t.campaign_id = s.campaign_id AND t.status_id = s.status_id
        )
        ON CONFLICT (campaign_id, status_id) DO NOTHING
        RETURNING campaign_id
    )
    SELECT campaign_id, count(*) FROM added GROUP BY campaign_id
    """
)
_SOFT_DELETE = text(
    f"""
    WITH gone AS (
        UPDATE statuses AS t
        SET deleted_at = now()
        WHERE t.campaign_id = ANY(CAST(:ids AS text[])) AND t.deleted_at IS NULL
          AND NOT EXISTS (
              SELECT 1 FROM {_STAGE} AS s
              WHERE s.campaign_id = t.campaign_id AND s.status_id = t.status_id
          )
        RETURNING t.campaign_id
    )
    SELECT campaign_id, count(*) FROM gone GROUP BY campaign_id
    """
)


def _stage(connection: Connection, snapshots: Sequence[Snapshot]) -> None:
    """COPY every status of the batch into the session's temporary staging table."""
    # A no-op once the pooled connection has the table; its rows vanish at every commit and
    # rollback, and unlike TRUNCATE or DROP it writes nothing to the catalog (or the WAL).
    connection.exec_driver_sql(_STAGE_DDL)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {_STAGE} ({_COLUMNS}) FROM STDIN") as copy:
        for snapshot in snapshots:
            campaign_id = snapshot.campaign_id
            for status in snapshot.statuses:
                copy.write_row((campaign_id, *status))


def _per_campaign(connection: Connection, statement: object, ids: list[str]) -> dict[str, int]:
    result = connection.execute(statement, {"ids": ids})  # type: ignore[call-overload]
    return {campaign_id: count for campaign_id, count in result}


def apply_snapshots(connection: Connection, snapshots: Sequence[Snapshot]) -> dict[str, Counts]:
    """Merge complete snapshots into ``statuses`` inside the caller's transaction.

    Each snapshot is the whole truth for its campaign: statuses it lacks are soft-deleted.
    Returns the rows inserted, updated (including revived) and deleted per campaign.
    """
    if not snapshots:
        return {}
    ids = [snapshot.campaign_id for snapshot in snapshots]
    _stage(connection, snapshots)
    connection.execute(_NEW_CAMPAIGNS, {"ids": ids})
    for (code,) in connection.execute(_NEW_SYSTEM_STATUSES):
        logger.warning(
            "system_status %r is not in Thulium's documented list: added to system_statuses "
            "with documented = false",
            code,
        )
    updated = _per_campaign(connection, _UPDATE_CHANGED, ids)
    inserted = _per_campaign(connection, _INSERT_NEW, ids)
    deleted = _per_campaign(connection, _SOFT_DELETE, ids)
    return {
        campaign_id: Counts(
            inserted=inserted.get(campaign_id, 0),
            updated=updated.get(campaign_id, 0),
            deleted=deleted.get(campaign_id, 0),
        )
        for campaign_id in ids
    }
