"""Read access for BI tools: what ``thulium-etl grant-read ROLE`` grants, and to what.

A dashboard should connect as a role that can read the reporting layer and nothing else, so
no query a dashboard runs can change the data. In one transaction, the role gets ``USAGE``
on the schema, ``SELECT`` on every table and view of :data:`READABLE` and ``EXECUTE`` on the
functions of :data:`FUNCTIONS` (read-only: they only select), and loses any other privilege
granted on the tables, on the sequences behind their columns, and ``CREATE`` on the schema:
the same end state however often it runs. What a grant cannot take away (superuser, a role
it is a member of, privileges granted to ``PUBLIC``) is checked afterwards and reported, not
hidden.

The role's name is always quoted as an identifier (``psycopg.sql.Identifier``), never pasted
into SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy import Connection, text

from etl.database import driver_errors
from etl.errors import ConfigError, DatabaseError, NoSuchRoleError

#: The reporting layer: every table and view a BI tool may read, views first.
VIEWS = (
    "current_statuses",
    "status_changes",
    "status_mix",
    "campaign_progress_daily",
    "campaign_freshness",
    "sync_run_campaigns",
)
TABLES = (
    "campaigns",
    "statuses",
    "status_history",
    "system_statuses",
    "campaign_stats",
    "sync_runs",
    "sync_run_batches",
)
READABLE = VIEWS + TABLES
#: The reporting layer's functions, by name and argument types: EXECUTE is granted on them.
FUNCTIONS = (("statuses_as_of", "timestamptz"),)
#: The job's bookkeeping, not data: Alembic's revision, and the run lock (a role that could lock
#: its rows could stop every sync). Never granted; privileges on them are revoked like the rest.
UNREADABLE = ("alembic_version", "run_locks")


@dataclass(frozen=True)
class Grant:
    """What a role may do once read access is granted."""

    role: str
    schema: str
    readable: tuple[str, ...]
    superuser: bool
    can_connect: bool
    can_create: bool
    writable: dict[str, tuple[str, ...]]  # relation → write privileges it still has

    def warnings(self) -> list[str]:
        """What keeps the role from being read-only (or from reading), in plain words."""
        if self.superuser:
            return [f"role {self.role} is a superuser: it can write anything, whatever is granted"]
        found = []
        for relation, privileges in self.writable.items():
            found.append(
                f"role {self.role} can still {', '.join(privileges)} on {relation}: granted by "
                "another user, to PUBLIC, or to a role it is a member of"
            )
        if self.can_create:
            found.append(
                f"role {self.role} can create tables in schema {self.schema}: granted to PUBLIC "
                f"(PostgreSQL's default before version 15) or to a role it is a member of; "
                f"REVOKE CREATE ON SCHEMA {self.schema} FROM PUBLIC takes it away"
            )
        if not self.can_connect:
            found.append(
                f"role {self.role} may not connect to this database: GRANT CONNECT ON DATABASE "
                "… TO it"
            )
        return found


def _execute(connection: Connection, statement: sql.Composed) -> None:
    """Run a composed statement in the caller's transaction (on its psycopg connection)."""
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    with driver_errors("GRANT/REVOKE"), driver.cursor() as cursor:
        cursor.execute(statement)


_ROLE = text("SELECT rolsuper FROM pg_roles WHERE rolname = :role")
_PRIVILEGES = text(
    """
    SELECT c.relname,
           has_table_privilege(:role, c.oid, 'SELECT') AS can_read,
           array_remove(ARRAY[
               CASE WHEN has_table_privilege(:role, c.oid, 'INSERT') THEN 'INSERT' END,
               CASE WHEN has_table_privilege(:role, c.oid, 'UPDATE') THEN 'UPDATE' END,
               CASE WHEN has_table_privilege(:role, c.oid, 'DELETE') THEN 'DELETE' END,
               CASE WHEN has_table_privilege(:role, c.oid, 'TRUNCATE') THEN 'TRUNCATE' END
           ], NULL) AS writes
    FROM pg_class AS c
    WHERE c.relnamespace = CAST(current_schema() AS regnamespace)
      AND c.relname = ANY(CAST(:relations AS text[]))
    ORDER BY c.relname
    """
)
# The current user and every role it belongs to, directly or not (pg_has_role would say a
# superuser belongs to every role).
_THE_JOBS_OWN = text(
    """
    WITH RECURSIVE mine (oid) AS (
        SELECT oid FROM pg_roles WHERE rolname = current_user
        UNION
        SELECT m.roleid FROM pg_auth_members AS m JOIN mine ON m.member = mine.oid
    )
    SELECT EXISTS (SELECT 1 FROM mine JOIN pg_roles AS r USING (oid) WHERE r.rolname = :role)
    """
)
# The sequences behind the tables' serial and identity columns: a role that may call
# setval() on one can make every later sync fail on a duplicate key.
_SEQUENCES = text(
    """
    SELECT s.relname,
           array_remove(ARRAY[
               CASE WHEN has_sequence_privilege(:role, s.oid, 'UPDATE') THEN 'UPDATE' END,
               CASE WHEN has_sequence_privilege(:role, s.oid, 'USAGE') THEN 'USAGE' END
           ], NULL) AS writes
    FROM pg_class AS s
    JOIN pg_depend AS d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
                       AND d.deptype IN ('a', 'i')
    JOIN pg_class AS t ON t.oid = d.refobjid
    WHERE s.relkind = 'S'
      AND t.relnamespace = CAST(current_schema() AS regnamespace)
      AND t.relname = ANY(CAST(:relations AS text[]))
    ORDER BY s.relname
    """
)
_SCHEMA = text(
    """
    SELECT has_schema_privilege(:role, current_schema(), 'CREATE'),
           has_database_privilege(:role, current_database(), 'CONNECT')
    """
)


def grant_read(connection: Connection, role: str) -> Grant:
    """Make ``role`` able to read the reporting layer and nothing else, in the caller's
    transaction (the schema must be at this version's revision: the views must exist).

    Raises :class:`NoSuchRoleError` when the role does not exist, and
    :class:`~etl.errors.DatabaseError` when the grants do not take (the caller is not the
    tables' owner).
    """
    superuser = connection.execute(_ROLE, {"role": role}).scalar()
    if superuser is None:
        raise NoSuchRoleError(
            f"role {role!r} does not exist: create it first (CREATE ROLE … LOGIN PASSWORD …), "
            "then grant it read access"
        )
    if connection.execute(_THE_JOBS_OWN, {"role": role}).scalar_one():
        raise ConfigError(
            f"role {role!r} is the role this command runs as, or one it belongs to: taking its "
            "write access away would stop the sync; give grant-read the BI tool's own role"
        )
    schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    _grant(connection, role, schema)
    return _granted(connection, role, schema, superuser=bool(superuser))


def _grant(connection: Connection, role: str, schema: str) -> None:
    """The statements: read, and nothing else, on the schema's reporting layer."""
    who = sql.Identifier(role)
    where = sql.Identifier(schema)

    def each(names: Sequence[str]) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(schema, name) for name in names)

    functions = sql.SQL(", ").join(
        sql.SQL("{}({})").format(sql.Identifier(schema, name), sql.SQL(arguments))
        for name, arguments in FUNCTIONS
    )
    for statement in (
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(where, who),
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(where, who),
        sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(each(READABLE + UNREADABLE), who),
        sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(each(READABLE), who),
        sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(functions, who),
    ):
        _execute(connection, statement)
    sequences = [name for name, _ in _sequences(connection, role)]
    if sequences:
        _execute(
            connection, sql.SQL("REVOKE ALL ON SEQUENCE {} FROM {}").format(each(sequences), who)
        )


def _sequences(connection: Connection, role: str) -> list[tuple[str, list[str]]]:
    """The sequences behind the tables' columns, with what ``role`` may still do with each."""
    found = connection.execute(_SEQUENCES, {"role": role, "relations": list(READABLE + UNREADABLE)})
    return [(name, list(writes)) for name, writes in found]


def _granted(connection: Connection, role: str, schema: str, *, superuser: bool) -> Grant:
    """What ``role`` may do now; raises if it still cannot read a table (not the owner's
    grants)."""
    rows = connection.execute(
        _PRIVILEGES, {"role": role, "relations": list(READABLE + UNREADABLE)}
    ).all()
    unread = sorted(set(READABLE) - {name for name, can_read, _ in rows if can_read})
    if unread:
        raise DatabaseError(
            f"could not grant {role} SELECT on {', '.join(unread)}: run grant-read as the owner "
            "of the tables (the user that runs `thulium-etl migrate`)"
        )
    can_create, can_connect = connection.execute(_SCHEMA, {"role": role}).one()
    return Grant(
        role=role,
        schema=schema,
        readable=READABLE,
        superuser=superuser,
        can_connect=bool(can_connect),
        can_create=bool(can_create),
        writable={
            **{name: tuple(writes) for name, _, writes in rows if writes},
            **{name: tuple(writes) for name, writes in _sequences(connection, role) if writes},
        },
    )
