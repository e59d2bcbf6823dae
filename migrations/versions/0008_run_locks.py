"""The run lock becomes row locks on a table of its own, which a read-only role cannot take.

Advisory locks need no privilege: any role that may connect (a BI tool's, after
``grant-read``) could take the keys the job uses, which follow from the public source, and
stop every sync. ``SELECT … FOR UPDATE`` needs the UPDATE privilege on the table, which only
the job's own role has on ``run_locks`` (``grant-read`` grants nothing on it). One row per
scope a run can lock: ``all`` (an unsharded run), ``shard I/N`` (added by the first run of
that shard).

A run that stops without being able to record its outcome (the database refused the write)
leaves a line here, on the lock's own connection, for the run that later closes it; the
comment on ``sync_runs.outcome`` says what ``partial`` and ``abandoned`` now cover.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The advisory lock key every sync of the versions before this revision held (exclusively,
# or shared when sharded): blake2b(b"thulium-etl sync ") as a signed 64-bit number.
_EARLIER_RUN_LOCK = -9_199_831_585_253_665_889
_OUTCOME = (
    "running; succeeded (every campaign synced); partial (some failed or were skipped, or the "
    "database refused what discovery found; the rest saved); failed (none synced, or the run "
    "stopped on an error); interrupted (SIGTERM/SIGINT); abandoned (it never recorded how it "
    "ended: error says why)"
)
_OUTCOME_0007 = (
    "running; succeeded (every campaign synced); partial (some failed or were skipped, the "
    "others saved); failed (none synced, or the run stopped on an error); interrupted "
    "(SIGTERM/SIGINT); abandoned (its process died)"
)


def upgrade() -> None:
    # A sync of an earlier version still running would not see the new lock, and the first
    # sync of this one would run beside it (and close it as abandoned): wait for it to end,
    # at most THULIUM_DB_LOCK_TIMEOUT, naming it.
    op.execute(f"SELECT pg_advisory_xact_lock({_EARLIER_RUN_LOCK})")
    op.create_table(
        "run_locks",
        sa.Column(
            "scope",
            sa.Text,
            primary_key=True,
            comment="What a run holding this row's lock syncs: all (an unsharded run) or shard I/N",
        ),
        sa.Column(
            "unrecorded_run",
            sa.BigInteger,
            comment="The last run of this scope that stopped without being able to record "
            "how it ended (sync_runs.run_id); null if none",
        ),
        sa.Column(
            "unrecorded_end",
            sa.Text,
            comment="How that run ended, in its own words: the error recorded when a later "
            "run closes it as abandoned",
        ),
        sa.PrimaryKeyConstraint("scope", name="pk_run_locks"),
        comment="The job's bookkeeping, not data: a sync holds its scope's row locked (FOR "
        "UPDATE) for as long as it runs, so that no other sync of the same campaigns runs "
        "meanwhile. Only the job's own role may lock it.",
    )
    op.execute("INSERT INTO run_locks (scope) VALUES ('all')")
    op.alter_column("sync_runs", "outcome", existing_type=sa.Text, comment=_OUTCOME)


def downgrade() -> None:
    op.alter_column("sync_runs", "outcome", existing_type=sa.Text, comment=_OUTCOME_0007)
    op.drop_table("run_locks")
