"""The built wheel carries the migrations: `migrate` works from any directory after install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from etl.migrate import head_revision
from tests.conftest import fresh_database

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("thulium_etl-*.whl")
    return built


def test_the_wheel_ships_the_migrations_and_the_standin(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "etl/migrations/env.py" in names
    assert "etl/migrations/script.py.mako" in names
    shipped = {n.rsplit("/", 1)[-1] for n in names if n.startswith("etl/migrations/versions/")}
    in_source = {p.name for p in (ROOT / "migrations" / "versions").glob("0*.py")}
    assert in_source and in_source <= shipped
    assert "etl/standin/server.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "thulium-etl = etl.cli:run" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_migrate_from_an_installed_wheel_in_another_directory(
    wheel: Path, pg_server: URL, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with fresh_database(pg_server, label="wheel") as url:
        env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "THULIUM_LOG_FORMAT": "text",
               "DATABASE_URL": url.render_as_string(hide_password=False)}
        probe = subprocess.run(
            [sys.executable, "-c", "import etl; print(etl.__file__)"],
            cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
        )
        assert probe.stdout.startswith(str(target))  # the wheel, not the source tree

        done = subprocess.run(
            [sys.executable, "-m", "etl", "migrate"],
            cwd=elsewhere, env=env, capture_output=True, text=True,
        )

        assert done.returncode == 0, done.stderr
        assert f"upgraded from empty to {head_revision()}" in done.stderr
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                revision = conn.execute(text("SELECT version_num FROM alembic_version"))
                assert revision.scalar_one() == head_revision()
        finally:
            engine.dispose()
