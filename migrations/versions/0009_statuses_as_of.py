"""``statuses_as_of(at)``: the statuses of every campaign as they were at a moment.

The same columns as the view ``current_statuses``, read from ``status_history``: for the
current moment it returns what ``current_statuses`` does; for a moment before a rename, the
old name; before a status existed, nothing. A SQL function that PostgreSQL inlines into the
query that calls it, so ``WHERE campaign_id = '00007'`` is applied to the history's index, not
after the whole history was read. Its tables are named with the schema it is created in, so
it reads the same tables whatever the caller's ``search_path``.

Only roles given read access may call it (``thulium-etl grant-read``): EXECUTE is taken from
PUBLIC, as every privilege on the tables is.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SIGNATURE = "statuses_as_of(timestamp with time zone)"
COMMENT = (
    "The statuses of every campaign as they were at the moment given, from status_history: "
    "the same columns as the view current_statuses (updated_at is when that version began). "
    "SELECT * FROM statuses_as_of('2026-03-01 00:00+01') WHERE campaign_id = '00007'. For now() "
    "it returns what current_statuses does; before a status existed, it leaves it out"
)


def upgrade() -> None:
    schema = op.get_bind().execute(text("SELECT quote_ident(current_schema())")).scalar_one()
    op.execute(
        f"""
        CREATE FUNCTION {schema}.statuses_as_of(at timestamptz)
        RETURNS TABLE (
            campaign_id text, status_id text, name text, system_status text,
            system_status_pl text, system_status_en text, dictionary_status_id bigint,
            first_seen_at timestamptz, updated_at timestamptz
        )
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$
            SELECT h.campaign_id, h.status_id, h.name, h.system_status,
                   l.description_pl, l.description_en, h.dictionary_status_id,
                   s.first_seen_at, h.valid_from
            FROM {schema}.status_history AS h
            JOIN {schema}.statuses AS s
              ON s.campaign_id = h.campaign_id AND s.status_id = h.status_id
            JOIN {schema}.system_statuses AS l ON l.code = h.system_status
            WHERE h.valid_from <= $1 AND (h.valid_to IS NULL OR h.valid_to > $1)
        $$
        """
    )
    op.execute(f"REVOKE EXECUTE ON FUNCTION {schema}.{SIGNATURE} FROM PUBLIC")
    comment = op.get_bind().execute(text("SELECT quote_literal(:c)"), {"c": COMMENT}).scalar_one()
    op.execute(f"COMMENT ON FUNCTION {schema}.{SIGNATURE} IS {comment}")


def downgrade() -> None:
    schema = op.get_bind().execute(text("SELECT quote_ident(current_schema())")).scalar_one()
    op.execute(f"DROP FUNCTION {schema}.{SIGNATURE}")
