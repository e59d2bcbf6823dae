"""``thulium-etl check``: one PASS/FAIL line per probe, an exit code to match, and no writes."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl import migrate
from standin import Fault, StandIn
from tests.helpers.cli import DB_PASSWORD, PASSWORD, Result, make_env, run_cli
from tests.helpers.data import seed_campaigns
from tests.helpers.databases import DATA_TABLES

IDS = ["00001", "00002", "0000A"]
LINE = re.compile(r"^(PASS|FAIL)  (database|campaign [0-9A-Za-z]{5}): \S")


def verdicts(result: Result) -> dict[str, str]:
    """``what`` → ``PASS``/``FAIL``; every stdout line must be a verdict line."""
    lines = result.out.splitlines()
    for line in lines:
        assert LINE.match(line), line
    found = {line.split(":", 1)[0][6:]: line[:4] for line in lines}
    assert len(found) == len(lines), "a probe was reported twice"
    return found


def line_for(result: Result, what: str) -> str:
    return next(line for line in result.out.splitlines() if line[6:].startswith(f"{what}:"))


def assert_nothing_written(engine: Engine) -> None:
    with engine.connect() as conn:
        counts = {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in DATA_TABLES
        }
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert counts == dict.fromkeys(DATA_TABLES, 0)
    assert revision == migrate.head_revision()


def test_all_pass_exits_0_and_writes_nothing(api: StandIn, db_url: URL, migrated: Engine) -> None:
    seed_campaigns(api, IDS, n=4)

    result = run_cli("check", env=make_env(api, db_url, IDS))

    assert result.code == 0, result.out + result.err
    assert verdicts(result) == {"database": "PASS", **{f"campaign {c}": "PASS" for c in IDS}}
    assert migrate.head_revision() in line_for(result, "database")
    assert "4 statuses" in line_for(result, "campaign 00001")
    assert [api.requests_for(c) for c in IDS] == [1, 1, 1]
    assert_nothing_written(migrated)


@pytest.mark.parametrize("fault", ["404", "403"])
def test_a_refused_campaign_is_a_fail_line_and_exit_1(
    api: StandIn, db_url: URL, migrated: Engine, fault: str
) -> None:
    seed_campaigns(api, IDS)
    if fault == "404":
        api.remove("00002")
    else:
        api.set_permanent_fault("00002", Fault.status(403))

    result = run_cli("check", env=make_env(api, db_url, IDS))

    assert result.code == 1
    assert verdicts(result) == {
        "database": "PASS",
        "campaign 00001": "PASS",
        "campaign 00002": "FAIL",
        "campaign 0000A": "PASS",
    }
    assert f"HTTP {fault}" in line_for(result, "campaign 00002")
    assert api.requests_for("00002") == 1  # permanent: not retried
    assert_nothing_written(migrated)


def test_a_broken_payload_is_a_fail_line(api: StandIn, db_url: URL, migrated: Engine) -> None:
    seed_campaigns(api, IDS)
    api.set_permanent_fault("0000A", Fault.invalid_json())

    result = run_cli("check", env=make_env(api, db_url, IDS))

    assert result.code == 1
    assert verdicts(result)["campaign 0000A"] == "FAIL"
    assert "not valid JSON" in line_for(result, "campaign 0000A")
    assert_nothing_written(migrated)


def test_quick_calls_the_api_once(api: StandIn, db_url: URL, migrated: Engine) -> None:
    seed_campaigns(api, IDS)

    result = run_cli("check", "--quick", env=make_env(api, db_url, IDS))

    assert result.code == 0, result.out + result.err
    assert verdicts(result) == {"database": "PASS", "campaign 00001": "PASS"}
    assert api.total_requests == 1
    assert api.requests_for("00001") == 1
    assert_nothing_written(migrated)


def test_campaign_flag_limits_the_probes(api: StandIn, db_url: URL, migrated: Engine) -> None:
    seed_campaigns(api, IDS)

    result = run_cli("check", "--campaign", "0000A", env=make_env(api, db_url, IDS))

    assert result.code == 0
    assert verdicts(result) == {"database": "PASS", "campaign 0000A": "PASS"}
    assert api.total_requests == 1
    assert_nothing_written(migrated)


def test_an_unmigrated_database_is_a_fail_line_and_exit_3(
    api: StandIn, empty_database: Engine
) -> None:
    seed_campaigns(api, IDS)

    result = run_cli("check", env=make_env(api, empty_database.url, IDS))

    with empty_database.connect() as conn:
        tables = conn.execute(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        ).scalar_one()
    assert result.code == 3
    found = verdicts(result)
    assert found["database"] == "FAIL"
    assert "migrate" in line_for(result, "database")
    assert all(found[f"campaign {c}"] == "PASS" for c in IDS)
    assert tables == 0  # check did not create the schema, not even alembic_version


def test_an_unreachable_database_is_a_fail_line_and_exit_3(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    env = make_env(
        api, db_url, IDS, DATABASE_URL=f"postgresql://etl:{DB_PASSWORD}@127.0.0.1:1/thulium"
    )

    result = run_cli("check", env=env)

    assert result.code == 3
    assert verdicts(result)["database"] == "FAIL"
    assert "127.0.0.1:1/thulium" in line_for(result, "database")
    assert DB_PASSWORD not in result.out + result.err
    assert_nothing_written(migrated)


def test_a_wrong_password_fails_every_campaign_without_printing_it(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    wrong = "not-the-Pa55-word"

    result = run_cli("check", env=make_env(api, db_url, IDS, THULIUM_PASSWORD=wrong))

    assert result.code == 1
    found = verdicts(result)
    assert found["database"] == "PASS"
    assert all(found[f"campaign {c}"] == "FAIL" for c in IDS)
    assert all("HTTP 401" in line_for(result, f"campaign {c}") for c in IDS)
    for secret in (wrong, PASSWORD, DB_PASSWORD):
        assert secret not in result.out + result.err
    assert_nothing_written(migrated)


@pytest.mark.parametrize(
    "change",
    [{"THULIUM_CAMPAIGNS": "0001"}, {"THULIUM_BASE_URL": "ftp://x/api"}, {"DATABASE_URL": ""}],
    ids=["bad-campaign", "bad-base-url", "no-database-url"],
)
def test_a_configuration_error_exits_2_before_any_probe(
    api: StandIn, db_url: URL, migrated: Engine, change: dict[str, str]
) -> None:
    seed_campaigns(api, IDS)

    result = run_cli("check", env=make_env(api, db_url, IDS, **change))

    assert result.code == 2
    assert result.out == ""
    assert next(iter(change)) in result.err
    assert api.total_requests == 0
    assert_nothing_written(migrated)
