"""Run history per batch: one row of arrays per write transaction, read through a view.

A nightly re-sync of thousands of unchanged campaigns used to write one history row (and two
index entries) per campaign; one row of arrays per batch writes about a tenth of that WAL.
``sync_run_campaigns`` becomes a view with the same columns, so queries keep working.
Also leaves room on ``campaigns`` pages (every run updates every row) and on ``statuses``
pages, so that updates stay on their page (HOT) and touch no index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = (
    ("campaign_id", "text"),
    ("outcome", "text"),
    ("rows_inserted", "integer"),
    ("rows_updated", "integer"),
    ("rows_deleted", "integer"),
    ("attempts", "integer"),
    ("duration_seconds", "double precision"),
    ("http_status", "integer"),
    ("request_id", "text"),
    ("error", "text"),
)
NAMES = ", ".join(name for name, _ in COLUMNS)

VIEW = f"""
CREATE VIEW sync_run_campaigns AS
SELECT b.run_id, c.campaign_id, c.outcome, c.rows_inserted, c.rows_updated, c.rows_deleted,
       c.attempts, c.duration_seconds, c.http_status, c.request_id, c.error, b.finished_at
FROM sync_run_batches AS b
CROSS JOIN LATERAL unnest({", ".join(f"b.{name}" for name, _ in COLUMNS)})
    AS c({NAMES})
"""


def upgrade() -> None:
    array = sa.dialects.postgresql.ARRAY
    types = {"text": sa.Text, "integer": sa.Integer, "double precision": sa.Float}
    op.create_table(
        "sync_run_batches",
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column(
            "finished_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        *(sa.Column(name, array(types[kind]), nullable=False) for name, kind in COLUMNS),
        sa.PrimaryKeyConstraint("run_id", "batch", name="pk_sync_run_batches"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.run_id"],
            name="fk_sync_run_batches_run_id_sync_runs",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            " AND ".join(
                f"cardinality({name}) = cardinality(campaign_id)" for name, _ in COLUMNS[1:]
            ),
            name="ck_sync_run_batches_same_length",
        ),
        sa.CheckConstraint(
            "outcome <@ ARRAY['succeeded', 'failed', 'skipped']", name="ck_sync_run_batches_outcome"
        ),
        comment="Campaign outcomes of a run, one row of parallel arrays per write transaction; "
        "read them through the view sync_run_campaigns",
    )
    aggregates = ", ".join(f"array_agg({name} ORDER BY campaign_id)" for name, _ in COLUMNS)
    op.execute(
        f"INSERT INTO sync_run_batches (run_id, batch, finished_at, {NAMES}) "
        f"SELECT run_id, 1, max(finished_at), {aggregates} FROM sync_run_campaigns GROUP BY run_id"
    )
    op.drop_table("sync_run_campaigns")
    op.execute(VIEW)
    op.execute(
        "COMMENT ON VIEW sync_run_campaigns IS 'Outcome of each campaign in each run, written in "
        "the same transaction as its data'"
    )
    op.execute("ALTER TABLE campaigns SET (fillfactor = 50)")
    op.execute("ALTER TABLE statuses SET (fillfactor = 90)")


def downgrade() -> None:
    """Back to one row per campaign (the 0002 table), keeping every recorded outcome."""
    op.execute("ALTER TABLE statuses RESET (fillfactor)")
    op.execute("ALTER TABLE campaigns RESET (fillfactor)")
    op.execute("ALTER VIEW sync_run_campaigns RENAME TO sync_run_campaigns_batched")
    zero = sa.text("0")
    op.create_table(
        "sync_run_campaigns",
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        *(
            sa.Column(name, sa.Integer, nullable=False, server_default=zero)
            for name in ("rows_inserted", "rows_updated", "rows_deleted", "attempts")
        ),
        sa.Column("duration_seconds", sa.Float, nullable=False, server_default=zero),
        sa.Column("http_status", sa.Integer),
        sa.Column("request_id", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column(
            "finished_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("run_id", "campaign_id", name="pk_sync_run_campaigns"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.run_id"],
            name="fk_sync_run_campaigns_run_id_sync_runs",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "outcome IN ('succeeded', 'failed', 'skipped')", name="ck_sync_run_campaigns_outcome"
        ),
    )
    op.create_index("ix_sync_run_campaigns_campaign_id", "sync_run_campaigns", ["campaign_id"])
    op.execute(
        f"INSERT INTO sync_run_campaigns (run_id, {NAMES}, finished_at) "
        f"SELECT run_id, {NAMES}, finished_at FROM sync_run_campaigns_batched"
    )
    op.execute("DROP VIEW sync_run_campaigns_batched")
    op.drop_table("sync_run_batches")
