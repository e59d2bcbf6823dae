"""The tables thulium-etl owns, as SQLAlchemy metadata: the one description of the schema.

Alembic revisions create these tables (``migrations/versions``), and a test checks that a
migrated database matches these objects exactly, comments included. The run history's simple
queries are built from them; the loader's merge and the history's array statements are
hand-written SQL (set based, one round trip per batch) over the same tables. All timestamps
are ``timestamptz`` in UTC. The reporting views live in their migration only (revision 0007).
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
    column,
    func,
    literal,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from etl.outcomes import CampaignOutcome, RunOutcome

# The Alembic revisions this code knows (migrations/versions), oldest first; the tables below
# match the last. A test keeps the list equal to the shipped revisions, so the job can check
# the schema without loading Alembic.
REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009")
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


# The outcome words reach the DDL only through these, as SQLAlchemy renders literals: the
# CHECK constraints, the server default and the partial index below spell none of them out.
def _one_of(name: str, vocabulary: type[enum.StrEnum]) -> ColumnElement[bool]:
    """``name IN (…every word of vocabulary…)``."""
    return column(name, Text).in_(list(vocabulary))


def _each_one_of(name: str, vocabulary: type[enum.StrEnum]) -> ColumnElement[bool]:
    """``name <@ ARRAY[…every word of vocabulary…]``: every element of an array is a word."""
    return column(name, ARRAY(Text)).bool_op("<@")(
        postgresql.array([literal(word, Text) for word in vocabulary])
    )


def _listed(vocabulary: type[enum.StrEnum]) -> str:
    """The words for a comment: ``a, b or c``."""
    *first, last = vocabulary
    return f"{', '.join(first)} or {last}"


def _timestamp(
    name: str, comment: str, *, nullable: bool, default_now: bool = False
) -> Column[object]:
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=func.now() if default_now else None,
        comment=comment,
    )


# Every table and column carries a comment written for analysts (Metabase shows them as
# descriptions; docs/tables.md is rendered from them). Revision 0007 set these very texts.
_OUTCOMES = _listed(CampaignOutcome)

system_statuses = Table(
    "system_statuses",
    metadata,
    Column(
        "code",
        Text,
        primary_key=True,
        comment="The system_status code as Thulium sends it, e.g. TO_CALL, CALL, NO_CALL",
    ),
    Column(
        "description_pl",
        Text,
        comment="What the code means, in Polish (Thulium's documentation); null for a code "
        "Thulium does not document",
    ),
    Column(
        "description_en",
        Text,
        comment="What the code means, in English; null for a code Thulium does not document",
    ),
    Column(
        "documented",
        Boolean,
        nullable=False,
        server_default=text("false"),
        comment="true for the 8 codes in Thulium's documentation; false for a code first met "
        "in data (stored by a sync, without descriptions)",
    ),
    _timestamp(
        "first_seen_at",
        "When thulium-etl first stored the code (UTC)",
        nullable=False,
        default_now=True,
    ),
    comment="One row per Thulium system_status code: what the dialer does with records in a "
    "status of that code. Join statuses.system_status = system_statuses.code.",
)

campaigns = Table(
    "campaigns",
    metadata,
    Column(
        "campaign_id",
        Text,
        primary_key=True,
        comment="Thulium's campaign id: five characters of 0-9, A-Z, a-z, e.g. 00001",
    ),
    _timestamp(
        "first_seen_at",
        "When thulium-etl first met the campaign (UTC)",
        nullable=False,
        default_now=True,
    ),
    _timestamp(
        "last_synced_at",
        "When the campaign's statuses were last synced successfully (UTC); null if never",
        nullable=True,
    ),
    _timestamp(
        "last_attempt_at",
        "When a sync last tried the campaign, successfully or not (UTC); null if never tried",
        nullable=True,
    ),
    Column(
        "last_attempt_outcome",
        Text,
        comment=f"How the last attempt ended: {_OUTCOMES}; null if never tried",
    ),
    Column(
        "last_error",
        Text,
        comment="Why the last attempt failed or was skipped; null when it succeeded",
    ),
    _timestamp(
        "last_seen_active_at",
        "When Thulium last listed the campaign as active (GET /outbounds/stats, in a sync "
        "with THULIUM_CAMPAIGNS=active) (UTC); null if it never did",
        nullable=True,
    ),
    _timestamp(
        "inactive_since",
        "Since when Thulium no longer lists the campaign as active (UTC); null while it does, "
        "or if it never did",
        nullable=True,
    ),
    CheckConstraint(r"campaign_id ~ '^[0-9A-Za-z]{5}$'", name="campaign_id_format"),
    CheckConstraint(_one_of("last_attempt_outcome", CampaignOutcome), name="last_attempt_outcome"),
    comment="One row per outbound campaign thulium-etl has synced or tried to sync: when it "
    "was last synced, how its last attempt went, whether Thulium lists it as active. The view "
    "campaign_freshness puts it in a dashboard's terms.",
    postgresql_with={"fillfactor": 50},  # every run updates every row: keep updates on-page
)

statuses = Table(
    "statuses",
    metadata,
    Column(
        "campaign_id",
        Text,
        ForeignKey("campaigns.campaign_id"),
        primary_key=True,
        comment="The campaign the status belongs to (campaigns.campaign_id)",
    ),
    Column(
        "status_id",
        Text,
        primary_key=True,
        comment="Thulium's id of the status, unique within its campaign; text (an integer id "
        "is stored as its decimal digits)",
    ),
    Column(
        "system_status",
        Text,
        ForeignKey("system_statuses.code"),
        nullable=False,
        comment="The status's system_status code (system_statuses.code): what the dialer does "
        "with its records",
    ),
    Column(
        "dictionary_status_id",
        BigInteger,
        comment="Thulium's dictionary status id; null when it has none",
    ),
    Column("name", Text, nullable=False, comment="The status's name, as agents see it in Thulium"),
    _timestamp("first_seen_at", "When a sync first stored the status (UTC)", nullable=False),
    _timestamp(
        "updated_at",
        "When a sync last stored a change of its name, system_status or dictionary_status_id, "
        "or its revival (UTC); first_seen_at if none",
        nullable=False,
    ),
    _timestamp(
        "deleted_at",
        "When a sync found that Thulium no longer lists the status (UTC); null while it does",
        nullable=True,
    ),
    Index("ix_statuses_system_status", "system_status"),
    comment="One row per record status of a campaign, as Thulium last listed it. Statuses "
    "Thulium stopped listing stay, with deleted_at set (the view current_statuses leaves them "
    "out); earlier versions are in status_history.",
    postgresql_with={"fillfactor": 90},
)

# One row per version of a status (slowly changing dimension, type 2): a rename, a change of
# system_status or dictionary_status_id, a deletion (closes the version) and a revival (opens
# a new one) each show. Written by the loader in the statements that change `statuses`, from
# the rows they write; no foreign keys (a check per version doubled a first sync's cost).
status_history = Table(
    "status_history",
    metadata,
    Column("campaign_id", Text, nullable=False, comment="The campaign (statuses.campaign_id)"),
    Column("status_id", Text, nullable=False, comment="The status (statuses.status_id)"),
    _timestamp(
        "valid_from",
        "When this version began: when a sync stored it (UTC). A version back-filled when "
        "status history began (revision 0006) starts at the status's updated_at then",
        nullable=False,
    ),
    _timestamp(
        "valid_to",
        "When this version ended: its successor began, or the status was deleted (UTC); null "
        "for the current version",
        nullable=True,
    ),
    Column(
        "system_status",
        Text,
        nullable=False,
        comment="The system_status code during this version",
    ),
    Column(
        "dictionary_status_id",
        BigInteger,
        comment="The dictionary status id during this version; null when none",
    ),
    Column("name", Text, nullable=False, comment="The name during this version"),
    Column(
        "opened_by_run",
        BigInteger,
        comment="The run that stored this version (sync_runs.run_id); null for a version "
        "back-filled when status history began",
    ),
    Column(
        "closed_by_run",
        BigInteger,
        comment="The run that ended this version (sync_runs.run_id); null while it is "
        "current, or when it was back-filled already ended",
    ),
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
    comment="One row per version of a status (a slowly changing dimension, type 2), valid "
    "from valid_from until valid_to. A change of name, system_status or dictionary_status_id "
    "ends a version and starts the next at the same instant; a deletion ends one; a revival "
    "starts a new one. A status as it was at time T: valid_from <= T AND (valid_to IS NULL OR "
    "valid_to > T). The view status_changes lists the changes.",
)


def _count(name: str, comment: str, kind: type[TypeEngine[Any]] = Integer) -> Column[object]:
    return Column(name, kind, nullable=False, server_default=text("0"), comment=comment)


sync_runs = Table(
    "sync_runs",
    metadata,
    Column(
        "run_id",
        BigInteger,
        Identity(always=True),
        primary_key=True,
        comment="The run's number, increasing with each run",
    ),
    _timestamp("started_at", "When the run started (UTC)", nullable=False, default_now=True),
    _timestamp(
        "finished_at",
        "When the run ended (UTC); null while it runs, and for a run whose process died until "
        "the next run marks it abandoned",
        nullable=True,
    ),
    Column(
        "outcome",
        Text,
        nullable=False,
        server_default=RunOutcome.RUNNING,
        comment="running; succeeded (every campaign synced); partial (some failed or were "
        "skipped, or the database refused what discovery found; the rest saved); failed (none "
        "synced, or the run stopped on an error); interrupted (SIGTERM/SIGINT); abandoned (it "
        "never recorded how it ended: error says why)",
    ),
    _count("campaigns_total", "Campaigns the run set out to sync"),
    _count("campaigns_ok", "Campaigns synced successfully"),
    _count("campaigns_failed", "Campaigns that failed (sync_run_campaigns.error says why)"),
    _count(
        "campaigns_skipped",
        "Campaigns not attempted: the API refused the credentials, the run was interrupted, "
        "or its process died",
    ),
    _count("rows_inserted", "Statuses the run added", BigInteger),
    _count("rows_updated", "Statuses the run changed or revived", BigInteger),
    _count("rows_deleted", "Statuses the run marked deleted", BigInteger),
    Column("error", Text, comment="What went wrong, in short; null when the run succeeded"),
    Column("version", Text, nullable=False, comment="The thulium-etl version that ran it"),
    Column(
        "host",
        Text,
        nullable=False,
        comment="The host name of the machine (or pod) that ran it",
    ),
    Column("pid", Integer, nullable=False, comment="Its process id on that host"),
    Column(
        "shard",
        Text,
        comment="I/N when the run synced shard I of N of the campaigns; null when unsharded",
    ),
    Column(
        "campaign_ids",
        ARRAY(Text),
        comment="The campaigns the run set out to sync; any it never got to are recorded "
        "skipped when it ends or is found abandoned",
    ),
    CheckConstraint(_one_of("outcome", RunOutcome), name="outcome"),
    Index(
        "ix_sync_runs_outcome_running",
        "outcome",
        postgresql_where=column("outcome", Text) == RunOutcome.RUNNING,
    ),
    comment="One row per sync run (per shard, when sharded): when it ran, how it ended, how "
    "many campaigns and rows it handled. Its campaigns are in sync_run_campaigns.",
)

# What each run that discovered the active campaigns saw of them: progress over time.
campaign_stats = Table(
    "campaign_stats",
    metadata,
    Column(
        "run_id",
        BigInteger,
        ForeignKey("sync_runs.run_id", ondelete="CASCADE"),
        primary_key=True,
        comment="The run that observed it (sync_runs.run_id)",
    ),
    Column(
        "campaign_id",
        Text,
        ForeignKey("campaigns.campaign_id"),
        primary_key=True,
        comment="The campaign (campaigns.campaign_id)",
    ),
    _timestamp(
        "observed_at",
        "When the run listed the active campaigns (UTC)",
        nullable=False,
        default_now=True,
    ),
    Column(
        "records_count",
        BigInteger,
        nullable=False,
        comment="Records (contacts) in the campaign, as Thulium counts them",
    ),
    Column(
        "completion_percent",
        Double,
        nullable=False,
        comment="How much of the campaign Thulium counts as done, in percent (0 to 100)",
    ),
    CheckConstraint("records_count >= 0", name="records_count"),
    CheckConstraint("completion_percent BETWEEN 0 AND 100", name="completion_percent"),
    Index("ix_campaign_stats_campaign_id", "campaign_id", "observed_at"),
    comment="One row per campaign per run that listed the active campaigns "
    "(THULIUM_CAMPAIGNS=active): the campaign's size and progress as GET /outbounds/stats "
    "reported them then. The view campaign_progress_daily keeps one per day.",
)

# Campaign outcomes, one row of parallel arrays per write transaction (revision 0004): a
# nightly re-sync of thousands of unchanged campaigns writes a few rows, not thousands.
# Each: name, element type, comment on the array column.
_OUTCOME_COLUMNS: tuple[tuple[str, type[TypeEngine[Any]], str], ...] = (
    ("campaign_id", Text, "The campaigns the transaction wrote"),
    ("outcome", Text, f"Each campaign's outcome: {_OUTCOMES}"),
    ("rows_inserted", Integer, "Statuses added, per campaign"),
    ("rows_updated", Integer, "Statuses changed or revived, per campaign"),
    ("rows_deleted", Integer, "Statuses marked deleted, per campaign"),
    ("attempts", Integer, "HTTP requests made, retries included, per campaign"),
    ("duration_seconds", Float, "Seconds each campaign took, retries included"),
    ("http_status", Integer, "The HTTP status of Thulium's last answer, per campaign"),
    ("request_id", Text, "Thulium's request id of the last answer, per campaign"),
    ("error", Text, "Why each campaign failed or was skipped"),
)

sync_run_batches = Table(
    "sync_run_batches",
    metadata,
    Column(
        "run_id",
        BigInteger,
        ForeignKey("sync_runs.run_id", ondelete="CASCADE"),
        primary_key=True,
        comment="The run (sync_runs.run_id)",
    ),
    Column(
        "batch",
        Integer,
        primary_key=True,
        comment="The transaction's number within the run, from 1",
    ),
    _timestamp(
        "finished_at", "When the transaction committed (UTC)", nullable=False, default_now=True
    ),
    *(
        Column(name, ARRAY(kind), nullable=False, comment=comment)
        for name, kind, comment in _OUTCOME_COLUMNS
    ),
    CheckConstraint(
        " AND ".join(
            f"cardinality({name}) = cardinality(campaign_id)" for name, _, _ in _OUTCOME_COLUMNS[1:]
        ),
        name="same_length",
    ),
    CheckConstraint(_each_one_of("outcome", CampaignOutcome), name="outcome"),
    comment="Storage behind the view sync_run_campaigns, which is what to query: one row of "
    "parallel arrays per write transaction of a run (element i of every array describes "
    "campaign_id[i]).",
)

#: The run lock's scope that an unsharded run locks (revision 0008 inserts its row).
ALL_CAMPAIGNS = "all"

# The run lock (see etl.lock): a run holds its scope's row FOR UPDATE while it runs.
run_locks = Table(
    "run_locks",
    metadata,
    Column(
        "scope",
        Text,
        primary_key=True,
        comment="What a run holding this row's lock syncs: all (an unsharded run) or shard I/N",
    ),
    Column(
        "unrecorded_run",
        BigInteger,
        comment="The last run of this scope that stopped without being able to record how it "
        "ended (sync_runs.run_id); null if none",
    ),
    Column(
        "unrecorded_end",
        Text,
        comment="How that run ended, in its own words: the error recorded when a later run "
        "closes it as abandoned",
    ),
    comment="The job's bookkeeping, not data: a sync holds its scope's row locked (FOR UPDATE) "
    "for as long as it runs, so that no other sync of the same campaigns runs meanwhile. Only "
    "the job's own role may lock it.",
)

# The view over sync_run_batches, one row per campaign and run. Not in ``metadata``: the
# migration creates it, this describes it for queries.
sync_run_campaigns = Table(
    "sync_run_campaigns",
    MetaData(),
    Column("run_id", BigInteger),
    *(Column(name, kind) for name, kind, _ in _OUTCOME_COLUMNS),
    Column("finished_at", DateTime(timezone=True)),
)
