"""DATABASE_URL forms users actually have: libpq's postgres:// and a Kubernetes secret file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl.standin import StandIn
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
