"""Runs remember the campaigns they set out to sync, so their totals always add up.

A run that dies leaves the campaigns it never attempted out of its history; with the list
of what it planned, the run that later marks it abandoned records them as skipped and sets
its totals from its per-campaign rows. Runs already marked abandoned get their totals
recounted here from the rows they committed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "sync_runs",
        sa.Column(
            "campaign_ids",
            sa.dialects.postgresql.ARRAY(sa.Text),
            comment="the campaigns the run set out to sync; any it never recorded are recorded "
            "skipped when it ends or is found abandoned",
        ),
    )
    op.execute(
        """
        UPDATE sync_runs AS r
        SET campaigns_ok = t.ok, campaigns_failed = t.failed, campaigns_skipped = t.skipped,
            rows_inserted = t.inserted, rows_updated = t.updated, rows_deleted = t.deleted
        FROM (
            SELECT run_id,
                   count(*) FILTER (WHERE outcome = 'succeeded') AS ok,
                   count(*) FILTER (WHERE outcome = 'failed') AS failed,
                   count(*) FILTER (WHERE outcome = 'skipped') AS skipped,
                   sum(rows_inserted) AS inserted, sum(rows_updated) AS updated,
                   sum(rows_deleted) AS deleted
            FROM sync_run_campaigns GROUP BY run_id
        ) AS t
        WHERE r.run_id = t.run_id AND r.outcome = 'abandoned'
        """
    )


def downgrade() -> None:
    op.drop_column("sync_runs", "campaign_ids")
