"""Alembic environment: runs migrations on a connection given by thulium-etl (``etl.migrate``,
which takes turns and creates the schema), or on ``DATABASE_URL``'s database and
``THULIUM_DB_SCHEMA``'s schema for a plain ``alembic upgrade head``."""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context

from etl.config import DatabaseSettings, load
from etl.database import make_engine
from etl.migrate import create_schema
from etl.schema import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    settings = load(DatabaseSettings, os.environ)
    engine = make_engine(settings)  # its search_path is the schema
    try:
        with engine.connect() as conn:
            create_schema(conn, settings.schema)
            conn.commit()
            context.configure(connection=conn, target_metadata=metadata)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("thulium-etl migrations run online only: set DATABASE_URL")
run_migrations_online()
