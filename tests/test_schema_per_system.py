"""Several Thulium systems in one database, a schema each (``THULIUM_DB_SCHEMA``): each
system's tables, run lock, run history, read access and metrics are its own, and a run of
one never waits for another's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from standin import StandIn, sample_statuses
from tests.helpers.cli import PASSWORD, ROOT, USER, make_env, run_cli, spawn_cli
from tests.helpers.databases import libpq
from tests.helpers.locks import holding_run_lock
from tests.helpers.pgproxy import DropsOptions, serving
from tests.helpers.prometheus import series
from tests.helpers.roles import ROLE_PASSWORD, connect_as, login_role

SYSTEMS = {"acme": ["00001", "00002"], "globex": ["00007", "00008", "00009"]}


def _env(api: StandIn, url: URL, schema: str, **extra: str) -> dict[str, str]:
    return make_env(api, url, SYSTEMS.get(schema, ["00001"]), THULIUM_DB_SCHEMA=schema, **extra)


def _serve(api: StandIn, schema: str) -> None:
    for n, campaign_id in enumerate(SYSTEMS[schema]):
        api.set_statuses(campaign_id, sample_statuses(campaign_id, 3 + n, seed=n))


def _migrated(api: StandIn, url: URL, *schemas: str) -> None:
    for schema in schemas:
        result = run_cli("migrate", env=_env(api, url, schema))
        assert result.code == 0, result.err


def _rows(url: URL, query: sql.Composed | str) -> list[tuple[object, ...]]:
    with psycopg.connect(libpq(url)) as conn:
        return conn.execute(query).fetchall()


def _relations(url: URL, schema: str) -> set[str]:
    query = "SELECT relname FROM pg_class WHERE relnamespace = CAST(%s AS regnamespace)"
    with psycopg.connect(libpq(url)) as conn:
        return {name for (name,) in conn.execute(query, [schema])}


def test_migrate_creates_the_schema_and_everything_of_the_job_lands_in_it(
    api: StandIn, empty_database: Engine
) -> None:
    url = empty_database.url

    _migrated(api, url, "acme")

    acme = _relations(url, "acme")
    assert {"statuses", "status_history", "sync_runs", "run_locks", "alembic_version"} <= acme
    assert {"current_statuses", "status_changes"} <= acme
    functions = _rows(url, "SELECT proname FROM pg_proc WHERE pronamespace = 'acme'::regnamespace")
    assert functions == [("statuses_as_of",)]
    assert _relations(url, "public") == set()


def test_two_systems_synced_at_once_into_one_database_each_see_only_their_own(
    empty_database: Engine,
) -> None:
    url = empty_database.url
    with (
        StandIn(user=USER, password=PASSWORD) as acme,
        StandIn(user=USER, password=PASSWORD) as globex,
    ):
        apis = {"acme": acme, "globex": globex}
        for schema, api in apis.items():
            _migrated(api, url, schema)
            _serve(api, schema)
            api.latency = 0.4  # both runs last long enough to overlap
        runs = {
            schema: spawn_cli("sync", env=_env(api, url, schema, THULIUM_CONCURRENCY="1"))
            for schema, api in apis.items()
        }
        errs = {schema: proc.communicate(timeout=60)[1] for schema, proc in runs.items()}

    for schema, proc in runs.items():
        assert proc.returncode == 0, errs[schema]
        stored = _rows(
            url,
            sql.SQL("SELECT DISTINCT campaign_id FROM {} ORDER BY 1").format(
                sql.Identifier(schema, "statuses")
            ),
        )
        assert [c for (c,) in stored] == SYSTEMS[schema]
        outcomes = _rows(
            url, sql.SQL("SELECT outcome FROM {}").format(sql.Identifier(schema, "sync_runs"))
        )
        assert outcomes == [("succeeded",)]
    # side by side: each started before the other finished
    acme_started, acme_finished, globex_started, globex_finished = _rows(
        url,
        "SELECT a.started_at, a.finished_at, g.started_at, g.finished_at "
        "FROM acme.sync_runs AS a CROSS JOIN globex.sync_runs AS g",
    )[0]
    assert acme_started < globex_finished and globex_started < acme_finished  # type: ignore[operator]


def test_a_run_of_one_system_never_waits_for_another(api: StandIn, empty_database: Engine) -> None:
    url = empty_database.url
    _migrated(api, url, "acme", "globex")
    _serve(api, "acme")
    _serve(api, "globex")

    with holding_run_lock(url, schema="acme"):  # acme's sync is running
        acme = run_cli("sync", env=_env(api, url, "acme"))
        globex = run_cli("sync", env=_env(api, url, "globex"))

    assert acme.code == 75, acme.err
    assert globex.code == 0, globex.err


def test_read_access_to_one_system_gives_nothing_on_another(
    api: StandIn, empty_database: Engine, pg_server: URL, tmp_path: Path
) -> None:
    url = empty_database.url
    _migrated(api, url, "public", "acme", "globex")
    _serve(api, "acme")
    assert run_cli("sync", env=_env(api, url, "acme")).code == 0
    with login_role(pg_server, url, "etl_reader_of_acme") as role:
        assert run_cli("grant-read", role, env=_env(api, url, "acme")).code == 0

        with connect_as(url, role) as conn:
            assert conn.execute("SELECT count(*) FROM acme.current_statuses").fetchone() == (7,)
            for relation in ("globex.statuses", "globex.current_statuses", "public.statuses"):
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute(f"SELECT * FROM {relation}")


@pytest.mark.parametrize(
    "name", ["Acme", "acme;drop", 'ac"me', "acme-x", "1acme", "pg_catalog", "a" * 64]
)
def test_a_schema_name_the_job_cannot_own_is_a_configuration_error(
    api: StandIn, db_url: URL, name: str
) -> None:
    result = run_cli("migrate", env={**_env(api, db_url, "acme"), "THULIUM_DB_SCHEMA": name})

    assert result.code == 2, result.err
    assert "THULIUM_DB_SCHEMA" in result.err and "Traceback" not in result.err


def test_a_sync_into_a_schema_never_migrated_exits_3(api: StandIn, empty_database: Engine) -> None:
    _migrated(api, empty_database.url, "acme")
    _serve(api, "globex")

    result = run_cli("sync", env=_env(api, empty_database.url, "globex"))

    assert result.code == 3, result.err
    assert "thulium-etl migrate" in result.err


def test_a_systems_metrics_carry_its_schema(
    api: StandIn, empty_database: Engine, tmp_path: Path
) -> None:
    url = empty_database.url
    _migrated(api, url, "acme")
    _serve(api, "acme")
    file = tmp_path / "acme.prom"

    assert run_cli("sync", env=_env(api, url, "acme", THULIUM_METRICS_FILE=str(file))).code == 0

    found = series(file.read_text())
    assert found and all(dict(labels).get("schema") == "acme" for _, labels in found)


def test_plain_alembic_upgrade_head_migrates_the_schema_too(empty_database: Engine) -> None:
    url = empty_database.url
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={
            "DATABASE_URL": url.render_as_string(hide_password=False),
            "THULIUM_DB_SCHEMA": "acme",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert {"statuses", "alembic_version"} <= _relations(url, "acme")
    assert _relations(url, "public") == set()


def test_three_first_migrates_of_a_new_schema_at_once_all_succeed(
    api: StandIn, empty_database: Engine
) -> None:
    env = _env(api, empty_database.url, "acme")
    procs = [spawn_cli("migrate", env=env) for _ in range(3)]
    errs = [proc.communicate(timeout=120)[1] for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0, 0], errs
    assert sum("upgraded from empty" in err for err in errs) == 1, errs


def test_migrate_needs_no_privilege_on_the_database_for_a_schema_a_dba_created(
    api: StandIn, empty_database: Engine, pg_server: URL
) -> None:
    """The job's role owns its schema, and may not create schemas in the database."""
    url = empty_database.url
    with login_role(pg_server, url, "etl_job_of_acme") as role:
        with psycopg.connect(libpq(url), autocommit=True) as dba:
            dba.execute(sql.SQL("CREATE SCHEMA acme AUTHORIZATION {}").format(sql.Identifier(role)))
            dba.execute(
                sql.SQL("REVOKE CREATE ON DATABASE {} FROM PUBLIC").format(
                    sql.Identifier(str(url.database))
                )
            )
        as_job = url.set(username=role, password=ROLE_PASSWORD)

        result = run_cli("migrate", env=_env(api, as_job, "acme"))
        with psycopg.connect(libpq(url), autocommit=True) as dba:
            dba.execute("DROP SCHEMA acme CASCADE")

    assert result.code == 0, result.err


def test_a_pooler_that_drops_the_schema_setting_stops_the_job_before_it_writes(
    api: StandIn, empty_database: Engine
) -> None:
    """Behind it, the job's names would refer to public: another system's tables."""
    url = empty_database.url
    _migrated(api, url, "public", "acme")
    _serve(api, "acme")

    with serving(DropsOptions(url)) as pooler:
        synced = run_cli("sync", env=_env(api, pooler.url, "acme"))
        granted = run_cli("runs", env=_env(api, pooler.url, "acme"))

    for result in (synced, granted):
        assert result.code == 3, result.err
        assert "schema public, not acme" in result.err and "pooler" in result.err
    for schema in ("public", "acme"):
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, "sync_runs"))
        assert _rows(url, query) == [(0,)]
    assert api.total_requests == 0
