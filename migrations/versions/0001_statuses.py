"""Campaign statuses: system_statuses lookup, campaigns and statuses.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The documented values (shared/THULIUM_API.md), frozen as of this revision.
DOCUMENTED = (
    ("TO_CALL", "Do dzwonienia (świeżo dodane rekordy)", "To call (newly added records)"),
    ("IN_PROGRESS", "Obrabiane", "In progress"),
    ("CALL", "Dzwonić", "Call"),
    ("MY_RECORD", "Mój rekord", "My record (assigned to one agent)"),
    ("NO_CALL", "Nie dzwonić", "Do not call"),
    ("ABANDONED_AFTER_N_TRIES", "Odrzucony po n próbach", "Abandoned after N attempts"),
    ("CALL_NO_SOONER_THAN", "Kontakt nie wcześniej niż", "Call no sooner than a set time"),
    (
        "CALL_PROGRESSIVE",
        "Dzwonić w trybie progressive (np. dla spadów w trybie predictive)",
        "Call in progressive mode (e.g. calls dropped in predictive mode)",
    ),
)

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    lookup = op.create_table(
        "system_statuses",
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("description_pl", sa.Text),
        sa.Column("description_en", sa.Text),
        sa.Column(
            "documented",
            sa.Boolean,
            nullable=False,
            server_default=sa.text("false"),
            comment="true for the codes in Thulium's documentation; "
            "false for codes first seen in data",
        ),
        sa.Column("first_seen_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("code", name="pk_system_statuses"),
        comment="Lookup of Thulium system_status codes (the dialer behaviour of a status)",
    )
    op.bulk_insert(
        lookup,
        [
            {"code": code, "description_pl": pl, "description_en": en, "documented": True}
            for code, pl, en in DOCUMENTED
        ],
    )
    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("first_seen_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("last_synced_at", TZ),
        sa.PrimaryKeyConstraint("campaign_id", name="pk_campaigns"),
        sa.CheckConstraint(
            r"campaign_id ~ '^[0-9A-Za-z]{5}$'", name="ck_campaigns_campaign_id_format"
        ),
        comment="Outbound campaigns synced; last_synced_at is the last successful sync",
    )
    op.create_table(
        "statuses",
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("status_id", sa.Text, nullable=False),
        sa.Column("system_status", sa.Text, nullable=False),
        sa.Column("dictionary_status_id", sa.BigInteger),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("first_seen_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("deleted_at", TZ),
        sa.PrimaryKeyConstraint("campaign_id", "status_id", name="pk_statuses"),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.campaign_id"], name="fk_statuses_campaign_id_campaigns"
        ),
        sa.ForeignKeyConstraint(
            ["system_status"],
            ["system_statuses.code"],
            name="fk_statuses_system_status_system_statuses",
        ),
        comment="Record statuses of each campaign; "
        "deleted_at is set when Thulium stops listing one",
    )
    op.create_index("ix_statuses_system_status", "statuses", ["system_status"])


def downgrade() -> None:
    op.drop_table("statuses")
    op.drop_table("campaigns")
    op.drop_table("system_statuses")
