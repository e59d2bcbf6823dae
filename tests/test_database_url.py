"""DATABASE_URL forms users actually have: libpq's postgres:// and a Kubernetes secret file."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl import config
from etl.database import make_engine
from standin import StandIn
from tests.helpers.cli import make_env, run_cli
from tests.helpers.data import seed_campaigns

IDS = ["00001"]


def _synced(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM statuses")).scalar_one())


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_every_postgres_scheme_means_psycopg_3(
    api: StandIn, db_url: URL, migrated: Engine, scheme: str
) -> None:
    seed_campaigns(api, IDS)
    env = make_env(api, db_url, IDS)
    env["DATABASE_URL"] = scheme + env["DATABASE_URL"][len("postgresql+psycopg") :]

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    assert _synced(migrated) == 5


def test_the_url_can_come_from_a_secret_file(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path
) -> None:
    seed_campaigns(api, IDS)
    env = make_env(api, db_url, IDS)
    secret = tmp_path / "url"
    secret.write_text(env.pop("DATABASE_URL") + "\n")  # as `echo … > file` writes it
    env["DATABASE_URL_FILE"] = str(secret)

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    assert _synced(migrated) == 5


def test_a_percent_encoded_password_may_hold_any_character(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    env = make_env(api, db_url.set(password="p@ss/w?r#d[1]&x=y :%"), IDS)

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    assert _synced(migrated) == 5


def test_an_at_sign_in_the_query_string_is_an_options_value_and_a_password_there_unprinted(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    password = f"q@{uuid.uuid4().hex[:12]}"  # trust authentication ignores it
    url = db_url.update_query_dict({"application_name": "etl@night", "password": password})
    env = make_env(api, url, IDS)
    env["DATABASE_URL"] = env["DATABASE_URL"].replace("%40", "@")  # both written raw

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    assert _synced(migrated) == 5
    assert password not in result.err + result.out and password[2:] not in result.err


def _client_parameters(env: dict[str, str]) -> dict[str, str]:
    """The libpq parameters of a connection the job opens with this environment."""
    engine = make_engine(config.load(config.DatabaseCommand, env).database)
    try:
        with engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            return dict(driver.info.get_parameters())
    finally:
        engine.dispose()


def test_connections_notice_a_vanished_server_within_a_minute(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    parameters = _client_parameters(make_env(api, db_url, IDS))

    assert parameters["keepalives_idle"] == "30"
    assert parameters["keepalives_interval"] == "10"
    assert parameters["keepalives_count"] == "3"
    assert parameters["tcp_user_timeout"] == "60000"


def test_the_url_can_set_its_own_keepalives(api: StandIn, db_url: URL, migrated: Engine) -> None:
    env = make_env(api, db_url.update_query_dict({"keepalives_idle": "5"}), IDS)

    assert _client_parameters(env)["keepalives_idle"] == "5"
