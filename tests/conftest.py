"""Fixtures: a real Postgres (a fresh database per test module) and the Thulium stand-in.

Tests run the real CLI, in-process through ``etl.cli.main`` or as a subprocess when signals,
locks or crashes are the point. What tests import lives in ``tests/helpers``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL

from etl import migrate
from etl.standin import StandIn
from tests.helpers.cli import PASSWORD, USER
from tests.helpers.databases import DATA_TABLES, fresh_database, postgres_server, reset_schema


@pytest.fixture(scope="session")
def pg_server() -> Iterator[URL]:
    """A Postgres server we may create and drop databases on (the maintenance database)."""
    with postgres_server() as url:
        yield url


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
