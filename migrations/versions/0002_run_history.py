"""Run history: sync_runs, sync_run_campaigns and each campaign's last attempt.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
ZERO = sa.text("0")


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("last_attempt_at", TZ))
    op.add_column("campaigns", sa.Column("last_attempt_outcome", sa.Text))
    op.add_column("campaigns", sa.Column("last_error", sa.Text))
    op.create_check_constraint(
        "ck_campaigns_last_attempt_outcome",
        "campaigns",
        "last_attempt_outcome IN ('succeeded', 'failed', 'skipped')",
    )
    # Campaigns synced before this revision: their last attempt is their last success.
    op.execute(
        "UPDATE campaigns SET last_attempt_at = last_synced_at, last_attempt_outcome = 'succeeded'"
        " WHERE last_synced_at IS NOT NULL"
    )
    op.create_table(
        "sync_runs",
        sa.Column("run_id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("started_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", TZ),
        sa.Column("outcome", sa.Text, nullable=False, server_default=sa.text("'running'")),
        sa.Column("campaigns_total", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("campaigns_ok", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("campaigns_failed", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("campaigns_skipped", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("rows_inserted", sa.BigInteger, nullable=False, server_default=ZERO),
        sa.Column("rows_updated", sa.BigInteger, nullable=False, server_default=ZERO),
        sa.Column("rows_deleted", sa.BigInteger, nullable=False, server_default=ZERO),
        sa.Column("error", sa.Text),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_sync_runs"),
        sa.CheckConstraint(
            "outcome IN ('running', 'succeeded', 'partial', 'failed', 'interrupted', 'abandoned')",
            name="ck_sync_runs_outcome",
        ),
        comment="One row per sync run; outcome 'running' only while its process holds the lock",
    )
    op.create_index(
        "ix_sync_runs_outcome_running",
        "sync_runs",
        ["outcome"],
        postgresql_where=sa.text("outcome = 'running'"),
    )
    op.create_table(
        "sync_run_campaigns",
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("rows_inserted", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("rows_updated", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("rows_deleted", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("duration_seconds", sa.Float, nullable=False, server_default=ZERO),
        sa.Column("http_status", sa.Integer),
        sa.Column("request_id", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("finished_at", TZ, nullable=False, server_default=sa.func.now()),
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
        comment="Outcome of each campaign in each run, written in the same transaction as its data",
    )
    op.create_index("ix_sync_run_campaigns_campaign_id", "sync_run_campaigns", ["campaign_id"])


def downgrade() -> None:
    op.drop_table("sync_run_campaigns")
    op.drop_table("sync_runs")
    op.drop_constraint("ck_campaigns_last_attempt_outcome", "campaigns")
    op.drop_column("campaigns", "last_error")
    op.drop_column("campaigns", "last_attempt_outcome")
    op.drop_column("campaigns", "last_attempt_at")
