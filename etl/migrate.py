"""Alembic, driven from the installed package: upgrade to head and check the schema is current.

Alembic is imported only to migrate: checking the schema before a sync compares the
``alembic_version`` row with :data:`etl.schema.REVISIONS`, which keeps the job's start fast
(a test keeps that list equal to the shipped revisions). A revision missing from that list
was written by a newer thulium-etl: this one refuses to touch such a database.

Migrations run one at a time: ``migrate`` holds a transaction-level advisory lock, so a
second ``migrate`` started meanwhile waits for the first and then finds nothing to do.
"""

from __future__ import annotations

import logging
from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text

from etl import __version__
from etl.errors import SchemaNotCurrentError, SchemaTooNewError
from etl.lock import lock_key
from etl.schema import REVISION, REVISIONS

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)


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


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None for a database Alembic never touched."""
    if connection.execute(text("SELECT to_regclass('alembic_version')")).scalar() is None:
        return None
    return connection.execute(text("SELECT max(version_num) FROM alembic_version")).scalar()


def _refuse_newer(current: str | None) -> None:
    if current is not None and current not in REVISIONS:
        raise SchemaTooNewError(
            f"the database is at revision {current}, which this thulium-etl ({__version__}, "
            f"schema {REVISION}) does not know: a newer thulium-etl migrated it. Upgrade "
            "thulium-etl; never run an older one against it"
        )


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Upgrade to head in one transaction; returns (revision before, revision after)."""
    from alembic import command

    with engine.begin() as conn:
        # A migration may take its time and wait for a running sync's locks.
        conn.execute(text("SET LOCAL lock_timeout = 0"))
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key("migrate")})
        before = current_revision(conn)
        _refuse_newer(before)
        command.upgrade(alembic_config(conn), "head")
        after = current_revision(conn)
    assert after is not None
    return before, after


def require_current(connection: Connection) -> None:
    """Raise unless the database is at the revision this code needs."""
    current = current_revision(connection)
    _refuse_newer(current)
    if current != REVISION:
        state = "has no thulium-etl schema" if current is None else f"is at revision {current}"
        raise SchemaNotCurrentError(
            f"the database {state}, this version needs {REVISION}: run `thulium-etl migrate` first"
        )
