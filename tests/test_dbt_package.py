"""The dbt package (``integrations/dbt``), run by real dbt against a migrated, synced database:
it parses, its tests state guarantees the job keeps (so they pass, and fail when a guarantee
is broken by hand), and its source freshness fits a nightly job.

Each test syncs three campaigns from the Thulium stand-in (``THULIUM_CAMPAIGNS=active``) into
the module's database; the dbt project of the module's own reads it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import StandIn, sample_statuses
from tests.helpers.cli import make_env, run_cli
from tests.helpers.dbt import DbtProject, dbt_project

ACTIVE = ["00001", "00002", "00003"]


@pytest.fixture(scope="module")
def project(db_url: URL, tmp_path_factory: pytest.TempPathFactory) -> DbtProject:
    return dbt_project(tmp_path_factory.mktemp("analytics"), db_url)


@pytest.fixture
def synced(migrated: Engine, api: StandIn, db_url: URL) -> Engine:
    """The module's database after a sync of three active campaigns, then a second sync
    that renames a status and deletes another (so the history and its views have rows)."""
    for n, campaign_id in enumerate(ACTIVE):
        api.set_statuses(campaign_id, sample_statuses(campaign_id, 4, seed=n))
    api.set_stats([{"id": c, "records_count": 10, "completion_percent": 5} for c in ACTIVE])
    env = make_env(api, db_url, [], THULIUM_CAMPAIGNS="active")
    assert run_cli("sync", env=env).code == 0
    changed = sample_statuses(ACTIVE[0], 4, seed=0)[1:]
    changed[0] = {**changed[0], "name": "Renamed"}
    api.set_statuses(ACTIVE[0], changed)
    assert run_cli("sync", env=env).code == 0
    return migrated


def _said(done: object) -> str:
    return f"{getattr(done, 'stdout', '')}{getattr(done, 'stderr', '')}"


def test_dbt_parses_the_package(project: DbtProject) -> None:
    done = project.run("parse")

    assert done.returncode == 0, _said(done)


def test_every_dbt_test_of_the_package_passes_on_a_synced_database(
    project: DbtProject, synced: Engine
) -> None:
    done = project.run("test")

    assert done.returncode == 0, _said(done)
    passed = re.search(r"Done\. PASS=(\d+) WARN=0 ERROR=0", done.stdout)
    assert passed and int(passed[1]) >= 70, done.stdout  # every guarantee of sources.yml ran


def test_source_freshness_passes_after_a_nights_sync(project: DbtProject, synced: Engine) -> None:
    done = project.run("source", "freshness")

    assert done.returncode == 0, _said(done)
    assert done.stdout.count("PASS freshness of thulium_etl.") == 2, done.stdout


def test_source_freshness_fails_when_the_last_sync_is_two_nights_old(
    project: DbtProject, synced: Engine
) -> None:
    with synced.begin() as conn:
        conn.execute(text("UPDATE campaigns SET last_synced_at = last_synced_at - interval '51h'"))
        conn.execute(text("UPDATE sync_runs SET finished_at = finished_at - interval '51h'"))

    done = project.run("source", "freshness")

    assert done.returncode != 0, _said(done)
    assert "ERROR STALE freshness of thulium_etl.campaigns" in done.stdout, done.stdout
    assert "ERROR STALE freshness of thulium_etl.sync_runs" in done.stdout, done.stdout


def test_a_night_missed_is_a_warning(project: DbtProject, synced: Engine) -> None:
    with synced.begin() as conn:
        conn.execute(text("UPDATE sync_runs SET finished_at = finished_at - interval '27h'"))

    done = project.run("source", "freshness")

    assert done.returncode == 0, _said(done)
    assert "WARN freshness of thulium_etl.sync_runs" in done.stdout, done.stdout


def test_a_guarantee_broken_by_hand_fails_its_dbt_test(project: DbtProject, synced: Engine) -> None:
    """A live status whose open version is gone: the history no longer says what is stored."""
    with synced.begin() as conn:
        conn.execute(
            text(
                "DELETE FROM status_history WHERE valid_to IS NULL AND (campaign_id, status_id) = "
                "(SELECT campaign_id, status_id FROM statuses WHERE deleted_at IS NULL LIMIT 1)"
            )
        )

    done = project.run("test")

    assert done.returncode != 0, _said(done)
    assert "FAIL 1 one_open_version_per_live_status" in done.stdout, done.stdout
    assert "PASS=" in done.stdout and "ERROR=1 " in done.stdout  # that test alone


def test_the_schema_is_a_dbt_var(db_url: URL, synced: Engine, tmp_path: Path) -> None:
    """A project pointed at another schema finds nothing there: the var is what it reads."""
    elsewhere = dbt_project(tmp_path / "elsewhere", db_url, schema="no_such_schema")

    done = elsewhere.run("source", "freshness")

    assert done.returncode != 0
    assert "no_such_schema" in done.stdout, done.stdout
