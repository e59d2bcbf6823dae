"""Alembic, driven from the installed package: upgrade to head and check the schema is current."""

from __future__ import annotations

import logging
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from etl.errors import SchemaNotCurrentError

logger = logging.getLogger(__name__)


def alembic_config(connection: Connection | None = None) -> Config:
    """A Config pointing at the migrations shipped inside the package (``etl.migrations``)."""
    config = Config()
    config.set_main_option("script_location", str(files("etl.migrations")))
    config.attributes["configure_logging"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the package ships no migrations"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Upgrade to head in one transaction; returns (revision before, revision after)."""
    with engine.begin() as conn:
        before = current_revision(conn)
        command.upgrade(alembic_config(conn), "head")
        after = current_revision(conn)
    assert after is not None
    return before, after


def require_current(connection: Connection) -> None:
    """Raise SchemaNotCurrentError unless the database is at the head revision."""
    current, head = current_revision(connection), head_revision()
    if current != head:
        state = "has no thulium-etl schema" if current is None else f"is at revision {current}"
        raise SchemaNotCurrentError(
            f"the database {state}, this version needs {head}: run `thulium-etl migrate` first"
        )
