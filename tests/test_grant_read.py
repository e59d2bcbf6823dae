"""``thulium-etl grant-read ROLE``: a BI tool's role reads the reporting layer and changes
nothing.

Each test grants a role of its own (``reader_role``), then connects as that role, as a
dashboard would, and tries.
"""

from __future__ import annotations

import uuid
from typing import LiteralString

import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl.grants import READABLE, TABLES, UNREADABLE
from tests.helpers.cli import Result, run_cli
from tests.helpers.databases import libpq
from tests.helpers.roles import connect_as, login_role


def _grant_read(database: URL, *argv: str) -> Result:
    env = {
        "DATABASE_URL": database.render_as_string(hide_password=False),
        "THULIUM_LOG_FORMAT": "json",
    }
    return run_cli("grant-read", *argv, env=env)


def _acls(engine: Engine) -> list[tuple[object, ...]]:
    """The access privileges of the schema and of every relation in it."""
    with engine.connect() as conn:
        relations = conn.execute(
            text(
                "SELECT relname, relacl::text FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace ORDER BY relname"
            )
        ).all()
        schema = conn.execute(
            text("SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'")
        ).all()
    return [tuple(row) for row in [*relations, *schema]]


def _a_column_of_each_table(engine: Engine) -> dict[str, str]:
    """Each table of the reporting layer → a column an UPDATE may set (not an identity)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT DISTINCT ON (table_name) table_name, column_name "
                "FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = ANY(:tables) AND is_identity = 'NO' "
                "ORDER BY table_name, ordinal_position"
            ),
            {"tables": list(TABLES)},
        ).all()
    assert len(rows) == len(TABLES)
    return dict(rows)


def _grant_beforehand(database: URL, role: str, *privileges: LiteralString) -> None:
    """GRANT each of ``privileges`` (``INSERT ON statuses``, say) to ``role``, as a DBA might
    have before grant-read runs."""
    with psycopg.connect(libpq(database), autocommit=True) as admin:
        for privilege in privileges:
            admin.execute(sql.SQL(f"GRANT {privilege} TO {{}}").format(sql.Identifier(role)))


def _levels(result: Result, level: str) -> list[str]:
    return [e["message"] for e in result.events() if e["level"] == level]


def test_the_role_can_read_every_table_and_view_of_the_reporting_layer(
    migrated: Engine, db_url: URL, reader_role: str
) -> None:
    result = _grant_read(db_url, reader_role)

    assert result.code == 0, result.err
    assert _levels(result, "warning") == []
    with connect_as(db_url, reader_role) as conn:
        for relation in READABLE:
            conn.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(sql.Identifier(relation)))
        listed = {
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    # The reporting layer is every relation the migrations create, Alembic's own excepted.
    with migrated.connect() as admin:
        every = set(
            admin.execute(
                text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                )
            ).scalars()
        )
    assert set(READABLE) | set(UNREADABLE) == every
    assert listed == set(READABLE)  # information_schema shows a role what it may use


def test_the_role_cannot_insert_update_delete_or_truncate(
    migrated: Engine, db_url: URL, reader_role: str
) -> None:
    with migrated.begin() as conn:
        conn.execute(text("INSERT INTO campaigns (campaign_id) VALUES ('00001')"))

    assert _grant_read(db_url, reader_role).code == 0

    with connect_as(db_url, reader_role) as conn:
        for table, column in _a_column_of_each_table(migrated).items():
            name, column_name = sql.Identifier(table), sql.Identifier(column)
            for statement in (
                sql.SQL("INSERT INTO {} DEFAULT VALUES").format(name),
                sql.SQL("UPDATE {} SET {} = {}").format(name, column_name, column_name),
                sql.SQL("DELETE FROM {}").format(name),
                sql.SQL("TRUNCATE {} CASCADE").format(name),
            ):
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute(statement)
        with pytest.raises(errors.InsufficientPrivilege):  # a view simple enough to update
            conn.execute("UPDATE campaign_freshness SET last_error = 'x'")
    with migrated.connect() as admin:
        assert admin.execute(text("SELECT count(*) FROM campaigns")).scalar_one() == 1


def test_the_role_cannot_create_tables(migrated: Engine, db_url: URL, reader_role: str) -> None:
    assert _grant_read(db_url, reader_role).code == 0

    with connect_as(db_url, reader_role) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE mine (x int)")


def test_the_role_cannot_read_alembics_bookkeeping(
    migrated: Engine, db_url: URL, reader_role: str
) -> None:
    assert _grant_read(db_url, reader_role).code == 0

    with connect_as(db_url, reader_role) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM alembic_version")


def test_granting_again_changes_nothing(migrated: Engine, db_url: URL, reader_role: str) -> None:
    first = _grant_read(db_url, reader_role)
    granted = _acls(migrated)

    again = _grant_read(db_url, reader_role)

    assert (first.code, again.code) == (0, 0), again.err
    assert _acls(migrated) == granted


def test_privileges_to_write_granted_before_are_taken_away(
    migrated: Engine, db_url: URL, reader_role: str
) -> None:
    _grant_beforehand(
        db_url,
        reader_role,
        "INSERT, UPDATE ON statuses, campaigns",
        "ALL ON alembic_version",
        "CREATE ON SCHEMA public",
    )

    result = _grant_read(db_url, reader_role)

    assert result.code == 0, result.err
    with connect_as(db_url, reader_role) as conn:
        for statement in (
            "INSERT INTO campaigns (campaign_id) VALUES ('00001')",
            "UPDATE alembic_version SET version_num = version_num",
            "CREATE TABLE mine (x int)",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)


def test_sequences_granted_before_are_taken_away(
    migrated: Engine, db_url: URL, reader_role: str
) -> None:
    _grant_beforehand(db_url, reader_role, "ALL ON ALL SEQUENCES IN SCHEMA public")

    result = _grant_read(db_url, reader_role)

    assert result.code == 0, result.err
    assert _levels(result, "warning") == []
    # setval() would make every later sync fail on a duplicate key
    with connect_as(db_url, reader_role) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT setval(pg_get_serial_sequence('sync_runs', 'run_id'), 1)")


def test_a_role_that_does_not_exist_exits_2_and_changes_nothing(
    migrated: Engine, db_url: URL
) -> None:
    before = _acls(migrated)

    result = _grant_read(db_url, "nobody_here")

    assert result.code == 2
    errors_logged = _levels(result, "error")
    assert len(errors_logged) == 1, result.err
    assert "'nobody_here' does not exist" in errors_logged[0]
    assert "CREATE ROLE" in errors_logged[0]
    assert "Traceback" not in result.err
    assert _acls(migrated) == before


def test_the_role_name_is_quoted_never_pasted_into_sql(
    pg_server: URL, migrated: Engine, db_url: URL
) -> None:
    name = f'BI "reader" {uuid.uuid4().hex[:6]}; DROP TABLE statuses; --'
    with login_role(pg_server, db_url, name):
        result = _grant_read(db_url, name)

        assert result.code == 0, result.err
        with connect_as(db_url, name) as conn:
            conn.execute("SELECT * FROM current_statuses")
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("DELETE FROM statuses")
    with migrated.connect() as admin:
        assert admin.execute(text("SELECT to_regclass('statuses')")).scalar() is not None


@pytest.mark.parametrize("role", ["", "x" * 64, "nul\x00byte"])
def test_a_role_name_postgres_would_refuse_or_truncate_exits_2(
    migrated: Engine, db_url: URL, role: str
) -> None:
    result = _grant_read(db_url, role)

    assert result.code == 2
    assert any("ROLE" in m for m in _levels(result, "error")), result.err


def test_a_superuser_role_is_reported_as_able_to_write(
    pg_server: URL, migrated: Engine, db_url: URL
) -> None:
    with login_role(pg_server, db_url, f"etl_super_{uuid.uuid4().hex[:8]}", superuser=True) as name:
        result = _grant_read(db_url, name)

    assert result.code == 0, result.err
    warnings = _levels(result, "warning")
    assert len(warnings) == 1 and "superuser" in warnings[0], result.err


def test_writing_through_a_role_it_is_a_member_of_is_reported(
    pg_server: URL, migrated: Engine, db_url: URL, reader_role: str
) -> None:
    with login_role(pg_server, db_url, f"etl_writer_{uuid.uuid4().hex[:8]}") as writer:
        _grant_beforehand(db_url, writer, "INSERT ON statuses")
        with psycopg.connect(libpq(db_url), autocommit=True) as admin:
            admin.execute(
                sql.SQL("GRANT {} TO {}").format(
                    sql.Identifier(writer), sql.Identifier(reader_role)
                )
            )

        result = _grant_read(db_url, reader_role)

        assert result.code == 0, result.err
        assert _levels(result, "warning") == [
            f"role {reader_role} can still INSERT on statuses: granted by another user, to "
            "PUBLIC, or to a role it is a member of"
        ]


def test_grant_read_before_migrate_exits_3(empty_database: Engine, reader_role: str) -> None:
    result = _grant_read(empty_database.url, reader_role)

    assert result.code == 3
    assert any("thulium-etl migrate" in m for m in _levels(result, "error")), result.err


def test_the_role_the_job_runs_as_is_refused_and_keeps_its_access(
    migrated: Engine, db_url: URL
) -> None:
    owner = db_url.username or "postgres"

    result = _grant_read(db_url, owner)

    assert result.code == 2, result.err
    assert "would stop the sync" in result.err
    with migrated.begin() as conn:  # still able to write
        conn.execute(text("INSERT INTO campaigns (campaign_id) VALUES ('ZZ999')"))
        conn.execute(text("DELETE FROM campaigns WHERE campaign_id = 'ZZ999'"))
