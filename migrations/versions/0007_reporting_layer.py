"""A reporting layer for BI tools: views named for people who write SQL, and a comment on
every table, view and column (Metabase shows them as descriptions; ``make docs`` renders
``docs/tables.md`` from them).

- ``current_statuses``: the statuses Thulium lists now, with what their system_status means.
- ``status_changes``: one row per change to a status (added, changed, deleted, revived), from
  ``status_history``.
- ``status_mix``: how many statuses of each system_status each campaign has now.
- ``campaign_progress_daily``: each campaign's progress per day (the day's last observation),
  with a ``time`` column for Grafana.
- ``campaign_freshness``: per campaign, how old its data is, how its last attempt went, and
  whether Thulium lists it as active.

The views and comments are frozen here, as of this revision. The downgrade drops the views
and puts back the comments revision 0006 had.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The day of a timestamp, in UTC whatever the session's TimeZone.
_DAY = "CAST(s.observed_at AT TIME ZONE 'UTC' AS date)"

VIEWS = {
    "current_statuses": """
        SELECT s.campaign_id, s.status_id, s.name, s.system_status,
               l.description_pl AS system_status_pl, l.description_en AS system_status_en,
               s.dictionary_status_id, s.first_seen_at, s.updated_at
        FROM statuses AS s
        JOIN system_statuses AS l ON l.code = s.system_status
        WHERE s.deleted_at IS NULL
    """,
    # Each version of a status opens with an event: the first is `added` (or `backfilled`
    # when it does not start at the status's first sighting: the history began later), one
    # that starts the instant its predecessor ended is `changed`, one after a gap `revived`.
    # A version that ends without a successor starting at that instant was `deleted`.
    "status_changes": """
        WITH versions AS (
            SELECT h.campaign_id, h.status_id, h.valid_from, h.valid_to, h.name,
                   h.system_status, h.dictionary_status_id, h.opened_by_run, h.closed_by_run,
                   s.first_seen_at,
                   row_number() OVER w AS version,
                   lag(h.valid_to) OVER w AS previous_valid_to,
                   lag(h.name) OVER w AS previous_name,
                   lag(h.system_status) OVER w AS previous_system_status,
                   lag(h.dictionary_status_id) OVER w AS previous_dictionary_status_id,
                   lead(h.valid_from) OVER w AS next_valid_from
            FROM status_history AS h
            JOIN statuses AS s ON s.campaign_id = h.campaign_id AND s.status_id = h.status_id
            WINDOW w AS (PARTITION BY h.campaign_id, h.status_id ORDER BY h.valid_from)
        )
        SELECT v.campaign_id, v.status_id, v.valid_from AS changed_at,
               CASE WHEN v.version = 1 AND v.valid_from = v.first_seen_at THEN 'added'
                    WHEN v.version = 1 THEN 'backfilled'
                    WHEN v.previous_valid_to = v.valid_from THEN 'changed'
                    ELSE 'revived' END AS change,
               CASE WHEN v.version > 1 THEN NULLIF(concat_ws(', ',
                   CASE WHEN v.name IS DISTINCT FROM v.previous_name THEN 'name' END,
                   CASE WHEN v.system_status IS DISTINCT FROM v.previous_system_status
                        THEN 'system_status' END,
                   CASE WHEN v.dictionary_status_id IS DISTINCT FROM
                             v.previous_dictionary_status_id
                        THEN 'dictionary_status_id' END), '') END AS what_changed,
               v.name, v.system_status, v.dictionary_status_id,
               CASE WHEN v.version > 1 THEN v.previous_name END AS previous_name,
               CASE WHEN v.version > 1 THEN v.previous_system_status END
                   AS previous_system_status,
               CASE WHEN v.version > 1 THEN v.previous_dictionary_status_id END
                   AS previous_dictionary_status_id,
               v.opened_by_run AS run_id
        FROM versions AS v
        UNION ALL
        SELECT v.campaign_id, v.status_id, v.valid_to, 'deleted', NULL, v.name,
               v.system_status, v.dictionary_status_id, NULL, NULL, NULL, v.closed_by_run
        FROM versions AS v
        WHERE v.valid_to IS NOT NULL AND v.next_valid_from IS DISTINCT FROM v.valid_to
    """,
    "status_mix": """
        SELECT s.campaign_id, s.system_status,
               l.description_pl AS system_status_pl, l.description_en AS system_status_en,
               count(*) AS status_count,
               round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY s.campaign_id), 1)
                   AS share_percent
        FROM statuses AS s
        JOIN system_statuses AS l ON l.code = s.system_status
        WHERE s.deleted_at IS NULL
        GROUP BY s.campaign_id, s.system_status, l.description_pl, l.description_en
    """,
    "campaign_progress_daily": f"""
        SELECT DISTINCT ON (s.campaign_id, {_DAY})
               CAST({_DAY} AS timestamp) AT TIME ZONE 'UTC' AS "time",
               {_DAY} AS day,
               s.campaign_id, s.records_count, s.completion_percent, s.observed_at, s.run_id
        FROM campaign_stats AS s
        ORDER BY s.campaign_id, {_DAY}, s.observed_at DESC, s.run_id DESC
    """,
    "campaign_freshness": """
        SELECT c.campaign_id,
               CASE WHEN c.last_seen_active_at IS NOT NULL THEN c.inactive_since IS NULL END
                   AS active,
               c.last_synced_at,
               CAST(extract(epoch FROM now() - c.last_synced_at) / 3600 AS double precision)
                   AS hours_since_sync,
               c.last_attempt_at, c.last_attempt_outcome, c.last_error,
               c.last_seen_active_at, c.inactive_since, c.first_seen_at
        FROM campaigns AS c
    """,
}

_OUTCOMES = "succeeded, failed or skipped"

# relation → (its comment, {column: comment}), for every table and view of the schema.
COMMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "system_statuses": (
        "One row per Thulium system_status code: what the dialer does with records in a "
        "status of that code. Join statuses.system_status = system_statuses.code.",
        {
            "code": "The system_status code as Thulium sends it, e.g. TO_CALL, CALL, NO_CALL",
            "description_pl": "What the code means, in Polish (Thulium's documentation); null "
            "for a code Thulium does not document",
            "description_en": "What the code means, in English; null for a code Thulium does "
            "not document",
            "documented": "true for the 8 codes in Thulium's documentation; false for a code "
            "first met in data (stored by a sync, without descriptions)",
            "first_seen_at": "When thulium-etl first stored the code (UTC)",
        },
    ),
    "campaigns": (
        "One row per outbound campaign thulium-etl has synced or tried to sync: when it was "
        "last synced, how its last attempt went, whether Thulium lists it as active. The view "
        "campaign_freshness puts it in a dashboard's terms.",
        {
            "campaign_id": "Thulium's campaign id: five characters of 0-9, A-Z, a-z, e.g. 00001",
            "first_seen_at": "When thulium-etl first met the campaign (UTC)",
            "last_synced_at": "When the campaign's statuses were last synced successfully "
            "(UTC); null if never",
            "last_attempt_at": "When a sync last tried the campaign, successfully or not (UTC); "
            "null if never tried",
            "last_attempt_outcome": f"How the last attempt ended: {_OUTCOMES}; null if never tried",
            "last_error": "Why the last attempt failed or was skipped; null when it succeeded",
            "last_seen_active_at": "When Thulium last listed the campaign as active "
            "(GET /outbounds/stats, in a sync with THULIUM_CAMPAIGNS=active) (UTC); null if "
            "it never did",
            "inactive_since": "Since when Thulium no longer lists the campaign as active (UTC); "
            "null while it does, or if it never did",
        },
    ),
    "statuses": (
        "One row per record status of a campaign, as Thulium last listed it. Statuses Thulium "
        "stopped listing stay, with deleted_at set (the view current_statuses leaves them "
        "out); earlier versions are in status_history.",
        {
            "campaign_id": "The campaign the status belongs to (campaigns.campaign_id)",
            "status_id": "Thulium's id of the status, unique within its campaign; text (an "
            "integer id is stored as its decimal digits)",
            "system_status": "The status's system_status code (system_statuses.code): what the "
            "dialer does with its records",
            "dictionary_status_id": "Thulium's dictionary status id; null when it has none",
            "name": "The status's name, as agents see it in Thulium",
            "first_seen_at": "When a sync first stored the status (UTC)",
            "updated_at": "When a sync last stored a change of its name, system_status or "
            "dictionary_status_id, or its revival (UTC); first_seen_at if none",
            "deleted_at": "When a sync found that Thulium no longer lists the status (UTC); "
            "null while it does",
        },
    ),
    "status_history": (
        "One row per version of a status (a slowly changing dimension, type 2), valid from "
        "valid_from until valid_to. A change of name, system_status or dictionary_status_id "
        "ends a version and starts the next at the same instant; a deletion ends one; a "
        "revival starts a new one. A status as it was at time T: valid_from <= T AND "
        "(valid_to IS NULL OR valid_to > T). The view status_changes lists the changes.",
        {
            "campaign_id": "The campaign (statuses.campaign_id)",
            "status_id": "The status (statuses.status_id)",
            "valid_from": "When this version began: when a sync stored it (UTC). A version "
            "back-filled when status history began (revision 0006) starts at the status's "
            "updated_at then",
            "valid_to": "When this version ended: its successor began, or the status was "
            "deleted (UTC); null for the current version",
            "system_status": "The system_status code during this version",
            "dictionary_status_id": "The dictionary status id during this version; null when none",
            "name": "The name during this version",
            "opened_by_run": "The run that stored this version (sync_runs.run_id); null for a "
            "version back-filled when status history began",
            "closed_by_run": "The run that ended this version (sync_runs.run_id); null while it "
            "is current, or when it was back-filled already ended",
        },
    ),
    "sync_runs": (
        "One row per sync run (per shard, when sharded): when it ran, how it ended, how many "
        "campaigns and rows it handled. Its campaigns are in sync_run_campaigns.",
        {
            "run_id": "The run's number, increasing with each run",
            "started_at": "When the run started (UTC)",
            "finished_at": "When the run ended (UTC); null while it runs, and for a run whose "
            "process died until the next run marks it abandoned",
            "outcome": "running; succeeded (every campaign synced); partial (some failed or "
            "were skipped, the others saved); failed (none synced, or the run stopped on an "
            "error); interrupted (SIGTERM/SIGINT); abandoned (its process died)",
            "campaigns_total": "Campaigns the run set out to sync",
            "campaigns_ok": "Campaigns synced successfully",
            "campaigns_failed": "Campaigns that failed (sync_run_campaigns.error says why)",
            "campaigns_skipped": "Campaigns not attempted: the API refused the credentials, "
            "the run was interrupted, or its process died",
            "rows_inserted": "Statuses the run added",
            "rows_updated": "Statuses the run changed or revived",
            "rows_deleted": "Statuses the run marked deleted",
            "error": "What went wrong, in short; null when the run succeeded",
            "version": "The thulium-etl version that ran it",
            "host": "The host name of the machine (or pod) that ran it",
            "pid": "Its process id on that host",
            "shard": "I/N when the run synced shard I of N of the campaigns; null when unsharded",
            "campaign_ids": "The campaigns the run set out to sync; any it never got to are "
            "recorded skipped when it ends or is found abandoned",
        },
    ),
    "campaign_stats": (
        "One row per campaign per run that listed the active campaigns "
        "(THULIUM_CAMPAIGNS=active): the campaign's size and progress as GET /outbounds/stats "
        "reported them then. The view campaign_progress_daily keeps one per day.",
        {
            "run_id": "The run that observed it (sync_runs.run_id)",
            "campaign_id": "The campaign (campaigns.campaign_id)",
            "observed_at": "When the run listed the active campaigns (UTC)",
            "records_count": "Records (contacts) in the campaign, as Thulium counts them",
            "completion_percent": "How much of the campaign Thulium counts as done, in percent "
            "(0 to 100)",
        },
    ),
    "sync_run_batches": (
        "Storage behind the view sync_run_campaigns, which is what to query: one row of "
        "parallel arrays per write transaction of a run (element i of every array describes "
        "campaign_id[i]).",
        {
            "run_id": "The run (sync_runs.run_id)",
            "batch": "The transaction's number within the run, from 1",
            "finished_at": "When the transaction committed (UTC)",
            "campaign_id": "The campaigns the transaction wrote",
            "outcome": f"Each campaign's outcome: {_OUTCOMES}",
            "rows_inserted": "Statuses added, per campaign",
            "rows_updated": "Statuses changed or revived, per campaign",
            "rows_deleted": "Statuses marked deleted, per campaign",
            "attempts": "HTTP requests made, retries included, per campaign",
            "duration_seconds": "Seconds each campaign took, retries included",
            "http_status": "The HTTP status of Thulium's last answer, per campaign",
            "request_id": "Thulium's request id of the last answer, per campaign",
            "error": "Why each campaign failed or was skipped",
        },
    ),
    "sync_run_campaigns": (
        "One row per campaign per run: how syncing it ended, recorded in the same transaction "
        "as the campaign's data.",
        {
            "run_id": "The run (sync_runs.run_id)",
            "campaign_id": "The campaign (campaigns.campaign_id)",
            "outcome": f"{_OUTCOMES}",
            "rows_inserted": "Statuses added",
            "rows_updated": "Statuses changed or revived",
            "rows_deleted": "Statuses marked deleted",
            "attempts": "HTTP requests made for the campaign, retries included; 0 when skipped",
            "duration_seconds": "Seconds the campaign took, retries included",
            "http_status": "The HTTP status of Thulium's last answer; null when no answer came "
            "(a timeout, a reset connection) or the campaign was skipped",
            "request_id": "Thulium's request_id of the last answer, when it sent one: give it "
            "to Thulium support",
            "error": "Why the campaign failed or was skipped; null when it succeeded",
            "finished_at": "When the campaign's outcome was committed (UTC)",
        },
    ),
    "alembic_version": (
        "Alembic's record of the schema revision `thulium-etl migrate` brought the database "
        "to; not data.",
        {"version_num": "The revision, e.g. 0007"},
    ),
    "current_statuses": (
        "The statuses Thulium lists now: one row per campaign and status, with what their "
        "system_status means in Polish and English. Deleted statuses are left out.",
        {
            "campaign_id": "The campaign (campaigns.campaign_id)",
            "status_id": "Thulium's id of the status, unique within its campaign",
            "name": "The status's name, as agents see it in Thulium",
            "system_status": "The status's system_status code (system_statuses.code)",
            "system_status_pl": "What system_status means, in Polish; null for a code Thulium "
            "does not document",
            "system_status_en": "What system_status means, in English; null for a code Thulium "
            "does not document",
            "dictionary_status_id": "Thulium's dictionary status id; null when it has none",
            "first_seen_at": "When a sync first stored the status (UTC)",
            "updated_at": "When it last changed, or was revived (UTC); first_seen_at if never",
        },
    ),
    "status_changes": (
        "One row per change to a status, from status_history: added; changed (what_changed "
        "says what); deleted (Thulium stopped listing it); revived (listed again after a "
        "deletion); backfilled (the status as it was when status history began, after "
        "changes it did not see). Filter on changed_at.",
        {
            "campaign_id": "The campaign (campaigns.campaign_id)",
            "status_id": "The status (statuses.status_id)",
            "changed_at": "When a sync stored the change (UTC)",
            "change": "added, changed, deleted, revived or backfilled",
            "what_changed": "For changed and revived: the fields that differ from the version "
            "before, comma-separated (name, system_status, dictionary_status_id); null "
            "otherwise, and for a revival that changed nothing else",
            "name": "The name from this change on; for deleted, the name it had",
            "system_status": "The system_status from this change on; for deleted, the one it had",
            "dictionary_status_id": "The dictionary status id from this change on; for deleted, "
            "the one it had",
            "previous_name": "For changed and revived: the name before; null otherwise",
            "previous_system_status": "For changed and revived: the system_status before; null "
            "otherwise",
            "previous_dictionary_status_id": "For changed and revived: the dictionary status id "
            "before; null otherwise",
            "run_id": "The run that stored the change (sync_runs.run_id); null for what was "
            "back-filled when status history began",
        },
    ),
    "status_mix": (
        "How many statuses of each system_status each campaign has now (deleted ones left "
        "out), with what the code means and its share of the campaign's statuses.",
        {
            "campaign_id": "The campaign (campaigns.campaign_id)",
            "system_status": "The system_status code (system_statuses.code)",
            "system_status_pl": "What the code means, in Polish; null for a code Thulium does "
            "not document",
            "system_status_en": "What the code means, in English; null for a code Thulium does "
            "not document",
            "status_count": "The campaign's current statuses with this system_status",
            "share_percent": "status_count as a percentage of the campaign's current statuses, "
            "to one decimal place",
        },
    ),
    "campaign_progress_daily": (
        "Each campaign's size and progress per day: the day's last observation in "
        "campaign_stats (runs with THULIUM_CAMPAIGNS=active). A day without such a run has no "
        "row.",
        {
            "time": "The day's start, 00:00 UTC: the time axis for Grafana",
            "day": "The calendar day (UTC)",
            "campaign_id": "The campaign (campaigns.campaign_id)",
            "records_count": "Records (contacts) in the campaign, as Thulium counts them",
            "completion_percent": "How much of the campaign Thulium counts as done, in percent "
            "(0 to 100)",
            "observed_at": "When this, the day's last observation, was made (UTC)",
            "run_id": "The run that made it (sync_runs.run_id)",
        },
    ),
    "campaign_freshness": (
        "One row per campaign: how old its data is, how its last attempt went, and whether "
        "Thulium lists it as active.",
        {
            "campaign_id": "The campaign",
            "active": "true when the last listing of active campaigns (GET /outbounds/stats) "
            "included it; false once it stopped (since inactive_since); null if never listed "
            "(synced by id only)",
            "last_synced_at": "When its statuses were last synced successfully (UTC); null if "
            "never",
            "hours_since_sync": "Hours from last_synced_at until now; null if never synced",
            "last_attempt_at": "When a sync last tried it, successfully or not (UTC); null if "
            "never tried",
            "last_attempt_outcome": f"How the last attempt ended: {_OUTCOMES}; null if never tried",
            "last_error": "Why the last attempt failed or was skipped; null when it succeeded",
            "last_seen_active_at": "When Thulium last listed it as active (UTC); null if never",
            "inactive_since": "Since when Thulium no longer lists it as active (UTC); null "
            "while it does, or if it never did",
            "first_seen_at": "When thulium-etl first met the campaign (UTC)",
        },
    ),
}

# The comments revision 0006 left, put back by the downgrade ("table" or "table.column").
PREVIOUS_COMMENTS = {
    "system_statuses": "Lookup of Thulium system_status codes (the dialer behaviour of a status)",
    "system_statuses.documented": "true for the codes in Thulium's documentation; false for "
    "codes first seen in data",
    "campaigns": "Outbound campaigns synced; last_synced_at is the last successful sync",
    "statuses": "Record statuses of each campaign; deleted_at is set when Thulium stops "
    "listing one",
    "sync_runs": "One row per sync run; outcome 'running' only while its process holds the lock",
    "sync_runs.shard": "I/N when the run synced one shard of the campaigns",
    "sync_runs.campaign_ids": "the campaigns the run set out to sync; any it never recorded "
    "are recorded skipped when it ends or is found abandoned",
    "sync_run_batches": "Campaign outcomes of a run, one row of parallel arrays per write "
    "transaction; read them through the view sync_run_campaigns",
    "sync_run_campaigns": "Outcome of each campaign in each run, written in the same "
    "transaction as its data",
}

_VIEWS = {*VIEWS, "sync_run_campaigns"}


def _literal(text: str | None) -> str:
    """A SQL string literal (standard_conforming_strings is on: only ' needs doubling)."""
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"


def _comment(relation: str, column: str | None, text: str | None) -> None:
    kind = "VIEW" if relation in _VIEWS else "TABLE"
    if column is None:
        op.execute(f"COMMENT ON {kind} {relation} IS {_literal(text)}")
    else:
        op.execute(f"COMMENT ON COLUMN {relation}.{column} IS {_literal(text)}")


def upgrade() -> None:
    for name, query in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {query}")
    for relation, (comment, columns) in COMMENTS.items():
        _comment(relation, None, comment)
        for column, text in columns.items():
            _comment(relation, column, text)


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")
    for relation, (_, columns) in COMMENTS.items():
        if relation in VIEWS:
            continue
        _comment(relation, None, PREVIOUS_COMMENTS.get(relation))
        for column in columns:
            _comment(relation, column, PREVIOUS_COMMENTS.get(f"{relation}.{column}"))
