"""Status history (one row per version of a status), and what discovery sees of campaigns.

- ``status_history``: the versions of every status. The upgrade back-fills what the
  database already knows: one open version per listed status (from its ``updated_at``) and
  one closed version per deleted one (until its ``deleted_at``), neither opened by a run.
  No foreign keys: the loader writes each version from the very rows it writes to
  ``statuses``, in the same statement, and a foreign key check per version (a row lock on
  the status, the code and the run) doubled the cost of a first sync.
- ``campaigns.last_seen_active_at`` and ``inactive_since``: when ``/outbounds/stats`` last
  listed a campaign as active, and since when it no longer does.
- ``campaign_stats``: what each run that called ``/outbounds/stats`` saw of its campaigns.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "status_history",
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("status_id", sa.Text, nullable=False),
        sa.Column("valid_from", TZ, nullable=False),
        sa.Column("valid_to", TZ),
        sa.Column("system_status", sa.Text, nullable=False),
        sa.Column("dictionary_status_id", sa.BigInteger),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("opened_by_run", sa.BigInteger),
        sa.Column("closed_by_run", sa.BigInteger),
        sa.PrimaryKeyConstraint("campaign_id", "status_id", "valid_from", name="pk_status_history"),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from", name="ck_status_history_valid_period"
        ),
        postgresql.ExcludeConstraint(
            ("campaign_id", "="),
            ("status_id", "="),
            using="btree",
            where=sa.text("valid_to IS NULL"),
            name="ex_status_history_one_open_version",
            deferrable=True,
            initially="DEFERRED",
        ),
    )
    op.execute(
        """
        INSERT INTO status_history (campaign_id, status_id, valid_from, valid_to, system_status,
            dictionary_status_id, name)
        SELECT campaign_id, status_id, updated_at, deleted_at, system_status,
            dictionary_status_id, name
        FROM statuses
        """
    )
    op.add_column("campaigns", sa.Column("last_seen_active_at", TZ))
    op.add_column("campaigns", sa.Column("inactive_since", TZ))
    op.create_table(
        "campaign_stats",
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("observed_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("records_count", sa.BigInteger, nullable=False),
        sa.Column("completion_percent", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "campaign_id", name="pk_campaign_stats"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.run_id"],
            name="fk_campaign_stats_run_id_sync_runs",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.campaign_id"],
            name="fk_campaign_stats_campaign_id_campaigns",
        ),
        sa.CheckConstraint("records_count >= 0", name="ck_campaign_stats_records_count"),
        sa.CheckConstraint(
            "completion_percent BETWEEN 0 AND 100", name="ck_campaign_stats_completion_percent"
        ),
    )
    op.create_index(
        "ix_campaign_stats_campaign_id", "campaign_stats", ["campaign_id", "observed_at"]
    )


def downgrade() -> None:
    op.drop_table("campaign_stats")
    op.drop_column("campaigns", "inactive_since")
    op.drop_column("campaigns", "last_seen_active_at")
    op.drop_table("status_history")
