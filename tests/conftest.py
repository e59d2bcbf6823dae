"""Fixtures: a real Postgres and the Thulium stand-in. What tests import lives in
``tests/helpers``.

A clean database comes one of two ways:

- ``migrated``: the module's database (``db_url``), migrated once, its data emptied before
  each test. For every test that needs the schema.
- ``empty_database``: a database of the test's own, never migrated, dropped after it. For
  the tests of ``migrate`` itself and of commands run before it.

Tests of the reporting layer read ``reporting_sample`` instead: the module's database after
four nights of syncs (``tests/helpers/reporting.py``), synced once per module and never
changed by its tests.

Tests run the real CLI, in-process through ``etl.cli.main`` or as a subprocess when signals,
locks or crashes are the point.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL

from etl import migrate
from standin import StandIn
from tests.helpers.cli import PASSWORD, USER
from tests.helpers.databases import DATA_TABLES, fresh_database, postgres_server
from tests.helpers.prometheus import GATEWAY_AUTH, Pushgateway, pushgateway
from tests.helpers.reporting import Sample, sync_sample
from tests.helpers.roles import login_role
from tests.helpers.scenario import Scenario, prepare


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
def _module_database_at_head(db_url: URL) -> Iterator[Engine]:
    """The module's database, migrated to the head revision once: tests take ``migrated``."""
    engine = create_engine(db_url, pool_size=2)
    try:
        migrate.upgrade(engine)
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def migrated(_module_database_at_head: Engine) -> Engine:
    """The module's database (``db_url``) at the head revision, with no row in the tables a
    sync writes (``DATA_TABLES``) and only the documented codes in ``system_statuses`` (an
    earlier test of the module may have synced an undocumented one)."""
    engine = _module_database_at_head
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(DATA_TABLES)}"))
        conn.execute(text("DELETE FROM system_statuses WHERE NOT documented"))
    return engine


@pytest.fixture
def empty_database(pg_server: URL, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A database of this test's own that nothing has touched, never migrated, dropped after
    the test; ``empty_database.url`` is its URL."""
    with fresh_database(pg_server, label=request.node.name.removeprefix("test_")) as url:
        engine = create_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture
def api() -> Iterator[StandIn]:
    """The Thulium stand-in, on loopback, knowing the tests' credentials and no campaign."""
    with StandIn(user=USER, password=PASSWORD) as server:
        yield server


@pytest.fixture
def scenario(migrated: Engine, api: StandIn, db_url: URL) -> Scenario:
    """Three campaigns synced cleanly, then served changed data: break ``scenario.victim``."""
    return prepare(api, db_url, migrated, THULIUM_TIMEOUT="0.3")


@pytest.fixture
def reader_role(pg_server: URL, db_url: URL) -> Iterator[str]:
    """A LOGIN role of this test's own, with no privileges: its name. Dropped after the test,
    with what it was granted in the module's database."""
    with login_role(pg_server, db_url, f"etl_reader_{uuid.uuid4().hex[:8]}") as name:
        yield name


@pytest.fixture(scope="module")
def reporting_sample(_module_database_at_head: Engine, db_url: URL) -> Sample:
    """The module's database after the reporting sample's four nights of syncs
    (``tests/helpers/reporting.py``), synced once per module: its tests only read it."""
    with StandIn(user=USER, password=PASSWORD) as server:
        return sync_sample(server, db_url, _module_database_at_head)


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


@pytest.fixture(scope="session")
def system_manifests() -> dict[str, list[dict[str, Any]]]:
    """What ``kubectl apply -k deploy/kubernetes/systems/<system>`` would send, by system."""
    from tests.helpers.deploy import KUBERNETES, kustomize

    systems = sorted(path.name for path in (KUBERNETES / "systems").iterdir())
    return {system: kustomize(KUBERNETES / "systems" / system) for system in systems}


@pytest.fixture
def gateway() -> Iterator[Pushgateway]:
    """A real Prometheus Pushgateway on loopback, empty, for this test alone."""
    with pushgateway() as started:
        yield started


@pytest.fixture
def guarded_gateway() -> Iterator[Pushgateway]:
    """The same, requiring HTTP Basic auth as ``GATEWAY_AUTH``."""
    with pushgateway(auth=GATEWAY_AUTH) as started:
        yield started
