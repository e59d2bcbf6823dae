"""Alembic, driven from the installed package: upgrade to head and check the schema is current.

Alembic is imported only to migrate: checking the schema before a sync compares the
``alembic_version`` row with :data:`etl.schema.REVISIONS`, which keeps the job's start fast
(a test keeps that list equal to the shipped revisions). A revision missing from that list
was written by a newer thulium-etl: this one refuses to touch such a database.

Migrations run one at a time: ``migrate`` locks ``alembic_version`` (EXCLUSIVE: readers go
on) for its transaction, so a second ``migrate`` started meanwhile waits for the first and then
finds nothing to do. A read-only role cannot take that lock (it has no privilege at all on
``alembic_version``). On a database never migrated there is no table to lock yet, and a
transaction-level advisory lock serves instead. Every lock a migration waits for (that one,
or a table it alters that a long query reads) is waited for at most
``THULIUM_DB_LOCK_TIMEOUT``, with a log line naming who holds it (:func:`etl.database.bounded`);
a stop rolls the migration back at once.
"""

from __future__ import annotations

import logging
from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text

from etl import __version__
from etl.database import bounded, quoted
from etl.errors import DatabaseError, SchemaNotCurrentError, SchemaTooNewError
from etl.schema import REVISION, REVISIONS
from etl.stop import Stop

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

# The advisory lock that makes first migrations of a schema (no alembic_version yet) take
# turns: the job's own first key (blake2b of "thulium-etl migrate", its high 32 bits), the
# schema's hash the second.
_FIRST_MIGRATION = text("SELECT pg_advisory_xact_lock(-1141684021, hashtext(:schema))")
# Read from the catalog table itself, as of this statement: the session's cache of names may
# still say "missing" for a schema another migrate created while this one waited its turn.
_SCHEMA_EXISTS = text("SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = :schema)")
_SEARCH_PATH = text("SELECT set_config('search_path', quote_ident(:schema), true)")


def alembic_config(connection: Connection | None = None) -> Config:
    """A Config pointing at the migrations shipped inside the package (``etl.migrations``)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("etl.migrations")))
    config.attributes["configure_logging"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision among the shipped migrations."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the package ships no migrations"
    return head


def _has_revisions(connection: Connection) -> bool:
    """Whether Alembic ever touched the database (its table is there; read without a lock)."""
    return connection.execute(text("SELECT to_regclass('alembic_version')")).scalar() is not None


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None for a database Alembic never touched."""
    if not _has_revisions(connection):
        return None
    return connection.execute(text("SELECT max(version_num) FROM alembic_version")).scalar()


def _refuse_newer(current: str | None) -> None:
    if current is not None and current not in REVISIONS:
        raise SchemaTooNewError(
            f"the database is at revision {current}, which this thulium-etl ({__version__}, "
            f"schema {REVISION}) does not know: a newer thulium-etl migrated it. Upgrade "
            "thulium-etl; never run an older one against it"
        )


def upgrade(
    engine: Engine, *, schema: str = "public", stop: Stop | None = None
) -> tuple[str | None, str]:
    """Upgrade ``schema`` (created if missing) to head in one transaction; returns (revision
    before, revision after)."""
    from alembic import command

    # Asked on a connection of its own, thrown away after: a server session caches that a
    # table is missing, and would still miss the table another migrate creates while this
    # one waits for the advisory lock.
    with engine.connect() as conn:
        _in_schema(conn, schema)
        first = not _has_revisions(conn)
        conn.invalidate()
    stop = stop or Stop()
    with engine.connect() as conn, bounded(conn, stop, doing="migrating"), conn.begin():
        conn.execute(text("SET LOCAL statement_timeout = 0"))  # a migration may take its time
        _in_schema(conn, schema)
        _take_turn(conn, schema=schema, first=first)
        before = current_revision(conn)
        _refuse_newer(before)
        command.upgrade(alembic_config(conn), "head")
        after = current_revision(conn)
        stop.check("committing the migration")
    assert after is not None
    return before, after


def _in_schema(connection: Connection, schema: str) -> None:
    """Make ``schema`` the only one the transaction's unqualified names refer to (every
    name of the migrations: tables, views, alembic_version)."""
    connection.execute(_SEARCH_PATH, {"schema": schema})


def _take_turn(connection: Connection, *, schema: str, first: bool) -> None:
    """Wait until no other ``migrate`` of ``schema`` is running (see the module's docstring),
    and create the schema if it is missing. A first migration that waited for the advisory
    lock may find the table another one created meanwhile, and a third may already hold
    that: it waits for the table too."""
    if first:
        connection.execute(_FIRST_MIGRATION, {"schema": schema})
        create_schema(connection, schema)
        if not _has_revisions(connection):
            return
    connection.execute(text("LOCK TABLE alembic_version IN EXCLUSIVE MODE"))


def create_schema(connection: Connection, schema: str) -> None:
    """Create ``schema`` if it is missing. Only then: PostgreSQL checks the privilege to
    create schemas in the database before it looks whether one exists, and a schema a DBA
    created for the job needs no such privilege."""
    if connection.execute(_SCHEMA_EXISTS, {"schema": schema}).scalar_one():
        return
    connection.execute(text(f"CREATE SCHEMA {quoted(connection, schema)}"))


def require_current(connection: Connection, *, schema: str) -> None:
    """Raise unless ``schema`` is the one the connection's names refer to (its search_path
    took: a pooler may drop a connection's options) and is at the revision this code needs."""
    in_use = connection.execute(text("SELECT current_schema()")).scalar()
    if in_use is None:
        raise SchemaNotCurrentError(
            f"schema {schema} does not exist (THULIUM_DB_SCHEMA): run `thulium-etl migrate` first"
        )
    if in_use != schema:
        raise DatabaseError(
            f"the connection's names refer to schema {in_use}, not {schema} "
            "(THULIUM_DB_SCHEMA): the server did not take the job's connection options (a "
            "pooler that drops them, such as PgBouncer with ignore_startup_parameters = "
            "options?). Connect to the server directly, or to a pool that passes options"
        )
    current = current_revision(connection)
    _refuse_newer(current)
    if current != REVISION:
        state = "has no thulium-etl schema" if current is None else f"is at revision {current}"
        raise SchemaNotCurrentError(
            f"the database {state}, this version needs {REVISION}: run `thulium-etl migrate` first"
        )
