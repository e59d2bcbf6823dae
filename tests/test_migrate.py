"""Migrations: idempotent, required before a sync, data-preserving, and in step with etl.schema."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

import etl.schema
from etl.migrate import alembic_config, head_revision
from etl.schema import REVISION
from standin import StandIn
from tests.helpers.cli import make_env, run_cli, spawn_cli
from tests.helpers.data import seed_campaigns, stored_statuses
from tests.helpers.databases import libpq
from tests.helpers.locks import HOLDER_APPLICATION, dba_lock

REPO_ROOT = Path(__file__).resolve().parent.parent
HEAD = "0009"
TABLES = [
    "alembic_version",
    "campaign_freshness",
    "campaign_progress_daily",
    "campaign_stats",
    "campaigns",
    "current_statuses",
    "run_locks",
    "status_changes",
    "status_history",
    "status_mix",
    "statuses",
    "sync_run_batches",
    "sync_run_campaigns",
    "sync_runs",
    "system_statuses",
]  # tables and views (information_schema.tables lists both)


def _tables(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' ORDER BY table_name"
                )
            ).scalars()
        )


def _schema_dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Columns, constraints and indexes of the public schema, as the catalog describes them."""
    with engine.connect() as conn:
        columns = conn.execute(
            text(
                "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, "
                "column_default FROM information_schema.columns WHERE table_schema = 'public' "
                "ORDER BY table_name, ordinal_position"
            )
        ).all()
        constraints = conn.execute(
            text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
                "ORDER BY 1, 2"
            )
        ).all()
        indexes = conn.execute(
            text(
                "SELECT tablename, indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = 'public' ORDER BY 1, 2"
            )
        ).all()
    return {
        "columns": [tuple(r) for r in columns],
        "constraints": [tuple(r) for r in constraints],
        "indexes": [tuple(r) for r in indexes],
    }


def _revision(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _upgrade_to(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def _messages(events: list[dict[str, Any]], level: str) -> list[str]:
    return [e["message"] for e in events if e["level"] == level]


def test_head_is_the_latest_revision() -> None:
    assert head_revision() == HEAD  # keeps HEAD below honest when a revision is added
    assert REVISION == HEAD  # what the job checks before a sync, without loading Alembic


def test_migrate_says_what_it_did_in_one_line(empty_database: Engine, api: StandIn) -> None:
    # a process of its own: Alembic logs some things once per process, on first import
    proc = spawn_cli("migrate", env=make_env(api, empty_database.url, ["00001"]))
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 0, err
    messages = [json.loads(line)["message"] for line in err.splitlines()]
    assert len(messages) == 1, messages
    assert f"upgraded from empty to {HEAD}" in messages[0]


def test_migrate_twice_is_a_no_op(empty_database: Engine, api: StandIn) -> None:
    env = make_env(api, empty_database.url, ["00001"])
    first = run_cli("migrate", env=env)
    assert first.code == 0, first.err
    assert _tables(empty_database) == TABLES
    assert _revision(empty_database) == [HEAD]
    schema = _schema_dump(empty_database)

    second = run_cli("migrate", env=env)

    assert second.code == 0, second.err
    assert _revision(empty_database) == [HEAD]
    assert _schema_dump(empty_database) == schema
    infos = _messages(second.events(), "info")
    assert any("nothing to do" in m and HEAD in m for m in infos), second.err
    assert not any("upgraded" in m for m in infos)
    assert _messages(second.events(), "error") == []


def test_sync_before_migrate_exits_3_and_creates_nothing(
    empty_database: Engine, api: StandIn
) -> None:
    seed_campaigns(api, ["00001"])

    result = run_cli("sync", env=make_env(api, empty_database.url, ["00001"]))

    assert result.code == 3
    errors = _messages(result.events(), "error")
    assert len(errors) == 1 and "thulium-etl migrate" in errors[0], result.err
    assert _tables(empty_database) == []
    assert api.requests_for("00001") == 0


def test_sync_on_an_older_revision_exits_3(empty_database: Engine, api: StandIn) -> None:
    seed_campaigns(api, ["00001"])
    _upgrade_to(empty_database, "0001")
    schema = _schema_dump(empty_database)

    result = run_cli("sync", env=make_env(api, empty_database.url, ["00001"]))

    assert result.code == 3
    errors = _messages(result.events(), "error")
    assert len(errors) == 1, result.err
    assert "0001" in errors[0] and "thulium-etl migrate" in errors[0]
    assert _revision(empty_database) == ["0001"]
    assert _schema_dump(empty_database) == schema
    with empty_database.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM statuses")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM campaigns")).scalar_one() == 0
    assert api.requests_for("00001") == 0


def test_later_revisions_apply_on_top_of_existing_data(
    empty_database: Engine, api: StandIn
) -> None:
    _upgrade_to(empty_database, "0001")
    with empty_database.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO campaigns (campaign_id, first_seen_at, last_synced_at) VALUES "
                "('00001', '2026-01-01T00:00:00Z', '2026-02-03T04:05:06Z'), "
                "('00002', '2026-01-01T00:00:00Z', NULL)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO statuses (campaign_id, status_id, system_status, "
                "dictionary_status_id, name, first_seen_at, updated_at, deleted_at) "
                "VALUES ('00001', '1', 'CALL', NULL, 'Dzwonić', '2026-01-01Z', "
                "'2026-01-02Z', NULL), ('00001', '2', 'NO_CALL', 5, 'Nie dzwonić', "
                "'2026-01-01Z', '2026-01-02Z', '2026-01-03Z')"
            )
        )
    statuses_before = stored_statuses(empty_database, "00001")

    result = run_cli("migrate", env=make_env(api, empty_database.url, ["00001"]))

    assert result.code == 0, result.err
    assert any(
        "upgraded" in m and "0001" in m and HEAD in m for m in _messages(result.events(), "info")
    ), result.err
    assert _revision(empty_database) == [HEAD]
    assert stored_statuses(empty_database, "00001") == statuses_before
    with empty_database.connect() as conn:
        campaigns = {
            row["campaign_id"]: dict(row)
            for row in conn.execute(text("SELECT * FROM campaigns")).mappings()
        }
        assert conn.execute(text("SELECT count(*) FROM sync_runs")).scalar_one() == 0
    synced = campaigns["00001"]
    assert synced["last_attempt_outcome"] == "succeeded"
    assert synced["last_attempt_at"] == synced["last_synced_at"]
    assert synced["last_synced_at"].isoformat() == "2026-02-03T04:05:06+00:00"
    assert synced["last_error"] is None
    never = campaigns["00002"]
    assert (
        never["last_synced_at"],
        never["last_attempt_at"],
        never["last_attempt_outcome"],
    ) == (None, None, None)


def test_models_match_the_migrations(empty_database: Engine) -> None:
    _upgrade_to(empty_database, "head")
    with empty_database.connect() as conn:
        plain = compare_metadata(MigrationContext.configure(conn), etl.schema.metadata)
        strict = compare_metadata(
            MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            ),
            etl.schema.metadata,
        )
    assert plain == []
    assert strict == []


# What the database made of the tables' CHECK constraints (by table, not by name: the
# migrations' names repeat the naming convention's prefix), server defaults and indexes
# (partial ones with their WHERE), in the current schema.
_DEFINITIONS = text(
    """
    SELECT 'constraint', c.relname, '', pg_get_constraintdef(con.oid)
    FROM pg_constraint AS con JOIN pg_class AS c ON c.oid = con.conrelid
    WHERE c.relnamespace = CAST(current_schema() AS regnamespace)
      AND c.relname = ANY(CAST(:tables AS text[]))
    UNION ALL
    SELECT 'default', c.relname, a.attname, pg_get_expr(d.adbin, d.adrelid)
    FROM pg_attrdef AS d JOIN pg_class AS c ON c.oid = d.adrelid
    JOIN pg_attribute AS a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
    WHERE c.relnamespace = CAST(current_schema() AS regnamespace)
      AND c.relname = ANY(CAST(:tables AS text[]))
    UNION ALL
    SELECT 'index', c.relname, i.relname,
           replace(pg_get_indexdef(i.oid), current_schema() || '.', '')
    FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_class AS c ON c.oid = x.indrelid
    WHERE c.relnamespace = CAST(current_schema() AS regnamespace)
      AND c.relname = ANY(CAST(:tables AS text[]))
    ORDER BY 1, 2, 3, 4
    """
)


def test_the_models_make_the_checks_defaults_and_indexes_the_migrations_made(
    migrated: Engine,
) -> None:
    """What compare_metadata leaves out: the CHECK constraints (the outcome vocabularies among
    them), server defaults as the database holds them, and the partial indexes' WHERE."""
    tables = {"tables": list(etl.schema.metadata.tables)}
    with migrated.connect() as conn, conn.begin() as transaction:
        by_migrations = conn.execute(_DEFINITIONS, tables).all()
        conn.execute(text("CREATE SCHEMA models"))
        conn.execute(text("SET LOCAL search_path TO models"))
        etl.schema.metadata.create_all(conn)
        by_models = conn.execute(_DEFINITIONS, tables).all()
        transaction.rollback()

    assert by_models == by_migrations


def test_plain_alembic_upgrade_head_from_the_repo_root(empty_database: Engine) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=REPO_ROOT,
        env={"DATABASE_URL": empty_database.url.render_as_string(hide_password=False)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert _revision(empty_database) == [HEAD]
    assert _tables(empty_database) == TABLES
    with empty_database.connect() as conn:
        documented = conn.execute(
            text("SELECT count(*) FROM system_statuses WHERE documented")
        ).scalar_one()
    assert documented == 8


def test_migrate_with_an_unreachable_database_exits_3(api: StandIn) -> None:
    env = {
        **make_env(api, URL.create("postgresql"), []),
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x",
    }

    result = run_cli("migrate", env=env)

    assert result.code == 3
    events = result.events()
    errors = _messages(events, "error")
    assert len(errors) == 1, result.err
    assert "unreachable" in errors[0] and "127.0.0.1:1/x" in errors[0]
    assert not any("exception" in e for e in events)  # a message, not a traceback
    assert "Traceback" not in result.err
    assert [line for line in result.err.splitlines() if line.strip()] == [
        line for line in result.err.splitlines() if line.startswith("{")
    ]
    assert result.out == ""


def test_revision_0004_keeps_every_recorded_campaign_outcome_both_ways(
    empty_database: Engine,
) -> None:
    """Per-campaign rows become batch rows behind a view of the same name, and back."""
    rows = [
        (1, "00001", "succeeded", 3, 1, 0, 1, 0.25, 200, None, None),
        (1, "00002", "failed", 0, 0, 0, 5, 4.5, 503, "r-1", "HTTP 503 (after 5 attempts)"),
        (2, "00001", "skipped", 0, 0, 0, 0, 0.0, None, None, "not attempted"),
    ]
    columns = (
        "run_id, campaign_id, outcome, rows_inserted, rows_updated, rows_deleted, "
        "attempts, duration_seconds, http_status, request_id, error"
    )
    query = text(f"SELECT {columns} FROM sync_run_campaigns ORDER BY run_id, campaign_id")
    _upgrade_to(empty_database, "0003")
    with empty_database.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sync_runs (run_id, outcome, version, host, pid) "
                "OVERRIDING SYSTEM VALUE VALUES (1, 'partial', 't', 'h', 1), "
                "(2, 'failed', 't', 'h', 1)"
            )
        )
        for row in rows:
            conn.execute(
                text(
                    f"INSERT INTO sync_run_campaigns ({columns}) VALUES (:r)".replace(
                        ":r", ", ".join(f":c{i}" for i in range(len(row)))
                    )
                ),
                {f"c{i}": value for i, value in enumerate(row)},
            )

    _upgrade_to(empty_database, "0004")

    with empty_database.connect() as conn:
        assert [tuple(r) for r in conn.execute(query)] == rows
        batches = conn.execute(text("SELECT count(*) FROM sync_run_batches")).scalar()
        assert batches == 2  # one per run
    with empty_database.begin() as conn:
        command.downgrade(alembic_config(conn), "0003")
    with empty_database.connect() as conn:
        assert [tuple(r) for r in conn.execute(query)] == rows
        kind = conn.execute(
            text(
                "SELECT table_type FROM information_schema.tables "
                "WHERE table_name = 'sync_run_campaigns'"
            )
        ).scalar()
        assert kind == "BASE TABLE"


def test_the_known_revisions_are_the_shipped_ones_in_order() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    shipped = [script.revision for script in reversed(list(scripts.walk_revisions()))]
    assert list(etl.schema.REVISIONS) == shipped


def test_migrate_and_sync_refuse_a_database_a_newer_version_migrated(
    empty_database: Engine, api: StandIn
) -> None:
    seed_campaigns(api, ["00001"])
    env = make_env(api, empty_database.url, ["00001"])
    assert run_cli("migrate", env=env).code == 0
    with empty_database.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    schema = _schema_dump(empty_database)

    migrated = run_cli("migrate", env=env)
    synced = run_cli("sync", env=env)

    for result in (migrated, synced):
        assert result.code == 3, result.err
        errors = _messages(result.events(), "error")
        assert len(errors) == 1, result.err
        assert "0099" in errors[0] and "newer thulium-etl" in errors[0]
        assert "run `thulium-etl migrate`" not in errors[0]
        assert "Traceback" not in result.err
    assert _revision(empty_database) == ["0099"]
    assert _schema_dump(empty_database) == schema
    assert api.requests_for("00001") == 0


def test_two_migrates_at_once_both_succeed_one_after_the_other(
    empty_database: Engine, api: StandIn
) -> None:
    env = make_env(api, empty_database.url, ["00001"])
    procs = [spawn_cli("migrate", env=env) for _ in range(3)]
    errs = [proc.communicate(timeout=120)[1] for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0, 0], errs
    assert _revision(empty_database) == [HEAD]
    assert _tables(empty_database) == TABLES
    upgraded = [err for err in errs if "upgraded from empty" in err]
    assert len(upgraded) == 1, errs  # the others waited, then had nothing to do


def test_a_migrate_waiting_for_a_lock_says_who_holds_it_and_gives_up_at_the_lock_timeout(
    empty_database: Engine, api: StandIn
) -> None:
    env = make_env(api, empty_database.url, ["00001"], THULIUM_DB_LOCK_TIMEOUT="3")
    assert run_cli("migrate", env=env).code == 0
    with dba_lock(empty_database.url, "alembic_version", "SHARE") as holder:  # as a migrate
        migrate = spawn_cli("migrate", env=env)
        _, err = migrate.communicate(timeout=30)  # it used to wait for good, without a word

    assert migrate.returncode == 3, err
    events = [json.loads(line) for line in err.splitlines()]
    held_by = f"held by pid {holder} (user postgres, application '{HOLDER_APPLICATION}', since"
    waiting = _messages(events, "warning")
    assert len(waiting) == 1 and "waiting for a lock on alembic_version" in waiting[0], err
    assert held_by in waiting[0] and "THULIUM_DB_LOCK_TIMEOUT" in waiting[0]
    errors = _messages(events, "error")
    assert len(errors) == 1 and "lock timeout" in errors[0] and held_by in errors[0], err
    assert _revision(empty_database) == [HEAD]


def test_revision_0008_waits_for_a_sync_of_an_earlier_version_to_end(
    empty_database: Engine, api: StandIn
) -> None:
    """Such a sync holds the advisory lock earlier versions used, which the first sync of the
    new version would not see."""
    env = make_env(api, empty_database.url, ["00001"], THULIUM_DB_LOCK_TIMEOUT="2")
    _upgrade_to(empty_database, "0007")
    digest = hashlib.blake2b(b"thulium-etl sync ", digest_size=8).digest()
    earlier = int.from_bytes(digest, "big", signed=True)
    with psycopg.connect(
        libpq(empty_database.url), application_name=HOLDER_APPLICATION, autocommit=True
    ) as running:
        running.execute("SELECT pg_advisory_lock(%s)", [earlier])
        waited = run_cli("migrate", env=env)
        held_by = f"held by pid {running.info.backend_pid} (user postgres, application"

    assert waited.code == 3, waited.err
    assert held_by in _messages(waited.events(), "error")[0]
    assert _revision(empty_database) == ["0007"]
    assert run_cli("migrate", env=env).code == 0
    assert _revision(empty_database) == [HEAD]


def test_revision_0005_recounts_the_totals_of_runs_already_abandoned(
    empty_database: Engine,
) -> None:
    _upgrade_to(empty_database, "0004")
    with empty_database.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sync_runs (run_id, outcome, campaigns_total, version, host, "
                "pid) OVERRIDING SYSTEM VALUE VALUES (1, 'abandoned', 3, '0.1.0', 'h', 1), "
                "(2, 'succeeded', 1, '0.1.0', 'h', 2)"
            )
        )
        conn.execute(
            text("UPDATE sync_runs SET campaigns_ok = 1, rows_inserted = 7 WHERE run_id = 2")
        )
        conn.execute(
            text(
                "INSERT INTO sync_run_batches (run_id, batch, campaign_id, outcome, "
                "rows_inserted, rows_updated, rows_deleted, attempts, duration_seconds, "
                "http_status, request_id, error) VALUES "
                "(1, 1, '{00001,00002}', '{succeeded,failed}', '{4,0}', '{1,0}', '{0,0}', "
                "'{1,5}', '{0.1,2.0}', '{200,503}', '{NULL,r}', '{NULL,boom}'), "
                "(2, 1, '{00001}', '{succeeded}', '{7}', '{0}', '{0}', '{1}', '{0.1}', "
                "'{200}', '{NULL}', '{NULL}')"
            )
        )

    _upgrade_to(empty_database, "0005")

    with empty_database.connect() as conn:
        runs = {
            row["run_id"]: dict(row)
            for row in conn.execute(text("SELECT * FROM sync_runs")).mappings()
        }
    dead = runs[1]
    assert (
        dead["campaigns_total"],
        dead["campaigns_ok"],
        dead["campaigns_failed"],
        dead["campaigns_skipped"],
    ) == (3, 1, 1, 0)  # the third was never recorded
    assert (dead["rows_inserted"], dead["rows_updated"], dead["rows_deleted"]) == (4, 1, 0)
    assert (runs[2]["campaigns_ok"], runs[2]["rows_inserted"]) == (1, 7)
    assert dead["campaign_ids"] is None


def _comments(engine: Engine) -> dict[str, str | None]:
    """``relation`` and ``relation.column`` → its comment, for every table and view."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, NULL, obj_description(c.oid, 'pg_class') FROM pg_class AS c "
                "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v') "
                "UNION ALL "
                "SELECT c.relname, a.attname, col_description(c.oid, a.attnum) "
                "FROM pg_class AS c JOIN pg_attribute AS a ON a.attrelid = c.oid "
                "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v') "
                "AND a.attnum > 0 AND NOT a.attisdropped"
            )
        ).all()
    return {
        relation + (f".{column}" if column else ""): comment for relation, column, comment in rows
    }


def test_every_table_view_and_column_has_a_comment(empty_database: Engine) -> None:
    _upgrade_to(empty_database, "head")

    comments = _comments(empty_database)

    assert {name.split(".")[0] for name in comments} == set(TABLES)
    assert [name for name, comment in comments.items() if not comment] == []


def test_revision_0007_downgrade_drops_the_views_and_puts_back_the_comments(
    empty_database: Engine,
) -> None:
    _upgrade_to(empty_database, "0006")
    schema, comments = _schema_dump(empty_database), _comments(empty_database)
    _upgrade_to(empty_database, "0007")

    with empty_database.begin() as conn:
        command.downgrade(alembic_config(conn), "0006")

    assert _revision(empty_database) == ["0006"]
    assert _schema_dump(empty_database) == schema
    assert _comments(empty_database) == comments
