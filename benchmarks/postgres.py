"""The Postgres server the benchmarks run on: a fresh database per measurement."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
from sqlalchemy.engine import URL, make_url

from benchmarks.common import BENCH_DIR, job_env_base, say
from standin.embedded import embedded_postgres


def conninfo(url: URL) -> str:
    """A libpq URL (what psql, psycopg and the job's DATABASE_URL accept)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def connect(url: URL) -> psycopg.Connection[Any]:
    return psycopg.connect(conninfo(url), autocommit=True)


@contextlib.contextmanager
def postgres(database_url: str | None) -> Iterator[URL]:
    """``database_url``, else ETL_BENCH_DATABASE_URL, else ETL_TEST_DATABASE_URL, else the
    embedded Postgres of the ``embedded`` extra (in ``.bench/pg``)."""
    raw = (
        database_url
        or os.environ.get("ETL_BENCH_DATABASE_URL")
        or os.environ.get("ETL_TEST_DATABASE_URL")
    )
    if raw:
        yield make_url(raw).set(drivername="postgresql+psycopg")
    else:
        say("no database URL given: starting the embedded Postgres in .bench/pg")
        with embedded_postgres(BENCH_DIR / "pg") as url:
            yield url


class Server:
    """The Postgres server: fresh databases (``thulium_bench_<pid>_*``, so that two runs on
    one server never take each other's), dropped at the end."""

    def __init__(self, admin: URL, *, keep: bool) -> None:
        self.admin = admin
        self.keep = keep
        self.created: list[str] = []
        self._prefix = f"thulium_bench_{os.getpid()}_"

    def version(self) -> str:
        with connect(self.admin) as conn:
            row = conn.execute("SELECT version()").fetchone()
        return str(row[0]) if row else "?"

    def fresh(self, name: str, *, migrate: bool = True, schema: str = "public") -> URL:
        """A new empty database, ``thulium-etl migrate``d (into ``schema``) unless
        ``migrate`` is false."""
        name = f"{self._prefix}{name}"
        with connect(self.admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        url = self.admin.set(database=name)
        if migrate:
            done = subprocess.run(
                [sys.executable, "-m", "etl", "--log-format", "json", "migrate"],
                env={**job_env_base(), "DATABASE_URL": conninfo(url), "THULIUM_DB_SCHEMA": schema},
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"thulium-etl migrate failed on {name}:\n{done.stderr}")
        return url

    def drop_all(self) -> None:
        if self.keep:
            return
        with connect(self.admin) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
