"""Record the shard (I/N) a run synced, for sharded runs over several pods.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "sync_runs",
        sa.Column("shard", sa.Text, comment="I/N when the run synced one shard of the campaigns"),
    )


def downgrade() -> None:
    op.drop_column("sync_runs", "shard")
