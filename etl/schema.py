"""The tables thulium-etl owns, as SQLAlchemy metadata: the one description of the schema.

Alembic revisions create these tables (``migrations/versions``), and a test checks that a
migrated database matches these objects exactly. The run history's simple queries are built
from them; the loader's merge and the history's array statements are hand-written SQL (set
based, one round trip per batch) over the same tables. All timestamps are ``timestamptz``
in UTC.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.types import TypeEngine

from etl.outcomes import CampaignOutcome, RunOutcome

# The Alembic revisions this code knows (migrations/versions), oldest first; the tables below
# match the last. A test keeps the list equal to the shipped revisions, so the job can check
# the schema without loading Alembic.
REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006")
REVISION = REVISIONS[-1]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _one_of(column: str, vocabulary: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(word)) for word in vocabulary)})"


def _timestamp(name: str, *, nullable: bool, default_now: bool = False) -> Column[object]:
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=func.now() if default_now else None,
    )


system_statuses = Table(
    "system_statuses",
    metadata,
    Column("code", Text, primary_key=True),
    Column("description_pl", Text),
    Column("description_en", Text),
    Column(
        "documented",
        Boolean,
        nullable=False,
        server_default=text("false"),
        comment="true for the codes in Thulium's documentation; false for codes first seen in data",
    ),
    _timestamp("first_seen_at", nullable=False, default_now=True),
    comment="Lookup of Thulium system_status codes (the dialer behaviour of a status)",
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", Text, primary_key=True),
    _timestamp("first_seen_at", nullable=False, default_now=True),
    _timestamp("last_synced_at", nullable=True),
    _timestamp("last_attempt_at", nullable=True),
    Column("last_attempt_outcome", Text),
    Column("last_error", Text),
    _timestamp("last_seen_active_at", nullable=True),
    _timestamp("inactive_since", nullable=True),
    CheckConstraint(r"campaign_id ~ '^[0-9A-Za-z]{5}$'", name="campaign_id_format"),
    CheckConstraint(_one_of("last_attempt_outcome", CampaignOutcome), name="last_attempt_outcome"),
    comment="Outbound campaigns synced; last_synced_at is the last successful sync",
    postgresql_with={"fillfactor": 50},  # every run updates every row: keep updates on-page
)

statuses = Table(
    "statuses",
    metadata,
    Column("campaign_id", Text, ForeignKey("campaigns.campaign_id"), primary_key=True),
    Column("status_id", Text, primary_key=True),
    Column("system_status", Text, ForeignKey("system_statuses.code"), nullable=False),
    Column("dictionary_status_id", BigInteger),
    Column("name", Text, nullable=False),
    _timestamp("first_seen_at", nullable=False),
    _timestamp("updated_at", nullable=False),
    _timestamp("deleted_at", nullable=True),
    Index("ix_statuses_system_status", "system_status"),
    comment="Record statuses of each campaign; deleted_at is set when Thulium stops listing one",
    postgresql_with={"fillfactor": 90},
)

# One row per version of a status (slowly changing dimension, type 2): a rename, a change of
# system_status or dictionary_status_id, a deletion (closes the version) and a revival (opens
# a new one) each show. Written by the loader in the statements that change `statuses`, from
# the rows they write; no foreign keys (a check per version doubled a first sync's cost).
status_history = Table(
    "status_history",
    metadata,
    Column("campaign_id", Text, nullable=False),
    Column("status_id", Text, nullable=False),
    _timestamp("valid_from", nullable=False),
    _timestamp("valid_to", nullable=True),
    Column("system_status", Text, nullable=False),
    Column("dictionary_status_id", BigInteger),
    Column("name", Text, nullable=False),
    Column("opened_by_run", BigInteger),
    Column("closed_by_run", BigInteger),
    PrimaryKeyConstraint("campaign_id", "status_id", "valid_from", name="pk_status_history"),
    CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_period"),
    # At most one open version per status, checked at commit: the loader closes the old
    # version and opens the new one in one statement, in no set order.
    ExcludeConstraint(
        ("campaign_id", "="),
        ("status_id", "="),
        using="btree",
        where=text("valid_to IS NULL"),
        name="ex_status_history_one_open_version",
        deferrable=True,
        initially="DEFERRED",
    ),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("run_id", BigInteger, Identity(always=True), primary_key=True),
    _timestamp("started_at", nullable=False, default_now=True),
    _timestamp("finished_at", nullable=True),
    Column("outcome", Text, nullable=False, server_default=text(repr(str(RunOutcome.RUNNING)))),
    Column("campaigns_total", Integer, nullable=False, server_default=text("0")),
    Column("campaigns_ok", Integer, nullable=False, server_default=text("0")),
    Column("campaigns_failed", Integer, nullable=False, server_default=text("0")),
    Column("campaigns_skipped", Integer, nullable=False, server_default=text("0")),
    Column("rows_inserted", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_updated", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_deleted", BigInteger, nullable=False, server_default=text("0")),
    Column("error", Text),
    Column("version", Text, nullable=False),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("shard", Text, comment="I/N when the run synced one shard of the campaigns"),
    Column(
        "campaign_ids",
        ARRAY(Text),
        comment="the campaigns the run set out to sync; any it never recorded are recorded "
        "skipped when it ends or is found abandoned",
    ),
    CheckConstraint(_one_of("outcome", RunOutcome), name="outcome"),
    Index(
        "ix_sync_runs_outcome_running",
        "outcome",
        postgresql_where=text(f"outcome = '{RunOutcome.RUNNING}'"),
    ),
    comment="One row per sync run; outcome 'running' only while its process holds the lock",
)

# What each run that discovered the active campaigns saw of them: progress over time.
campaign_stats = Table(
    "campaign_stats",
    metadata,
    Column(
        "run_id", BigInteger, ForeignKey("sync_runs.run_id", ondelete="CASCADE"), primary_key=True
    ),
    Column("campaign_id", Text, ForeignKey("campaigns.campaign_id"), primary_key=True),
    _timestamp("observed_at", nullable=False, default_now=True),
    Column("records_count", BigInteger, nullable=False),
    Column("completion_percent", Double, nullable=False),
    CheckConstraint("records_count >= 0", name="records_count"),
    CheckConstraint("completion_percent BETWEEN 0 AND 100", name="completion_percent"),
    Index("ix_campaign_stats_campaign_id", "campaign_id", "observed_at"),
)

# Campaign outcomes, one row of parallel arrays per write transaction (revision 0004): a
# nightly re-sync of thousands of unchanged campaigns writes a few rows, not thousands.
_OUTCOME_COLUMNS: tuple[tuple[str, type[TypeEngine[Any]]], ...] = (
    ("campaign_id", Text),
    ("outcome", Text),
    ("rows_inserted", Integer),
    ("rows_updated", Integer),
    ("rows_deleted", Integer),
    ("attempts", Integer),
    ("duration_seconds", Float),
    ("http_status", Integer),
    ("request_id", Text),
    ("error", Text),
)

sync_run_batches = Table(
    "sync_run_batches",
    metadata,
    Column(
        "run_id", BigInteger, ForeignKey("sync_runs.run_id", ondelete="CASCADE"), primary_key=True
    ),
    Column("batch", Integer, primary_key=True),
    _timestamp("finished_at", nullable=False, default_now=True),
    *(Column(name, ARRAY(kind), nullable=False) for name, kind in _OUTCOME_COLUMNS),
    CheckConstraint(
        " AND ".join(
            f"cardinality({name}) = cardinality(campaign_id)" for name, _ in _OUTCOME_COLUMNS[1:]
        ),
        name="same_length",
    ),
    CheckConstraint(
        "outcome <@ ARRAY[" + ", ".join(repr(str(word)) for word in CampaignOutcome) + "]",
        name="outcome",
    ),
    comment="Campaign outcomes of a run, one row of parallel arrays per write transaction; "
    "read them through the view sync_run_campaigns",
)

# The view over sync_run_batches, one row per campaign and run. Not in ``metadata``: the
# migration creates it, this describes it for queries.
sync_run_campaigns = Table(
    "sync_run_campaigns",
    MetaData(),
    Column("run_id", BigInteger),
    *(Column(name, kind) for name, kind in _OUTCOME_COLUMNS),
    Column("finished_at", DateTime(timezone=True)),
)
