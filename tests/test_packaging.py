"""The built wheel: the job and its migrations, no test equipment; `migrate` works from any
directory after install, and the stand-in stays importable from the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from sqlalchemy import Engine, text

from etl.migrate import head_revision
from tests.helpers.wheels import install_into_target

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "etl/migrations/env.py" in names
    assert "etl/migrations/script.py.mako" in names
    shipped = {n.rsplit("/", 1)[-1] for n in names if n.startswith("etl/migrations/versions/")}
    in_source = {p.name for p in (ROOT / "migrations" / "versions").glob("0*.py")}
    assert in_source and in_source <= shipped
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "thulium-etl = etl.cli:run" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_wheel_leaves_out_the_stand_in_and_the_tests(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "etl/cli.py" in names
    assert [n for n in names if n.startswith("standin/")] == []
    assert [n for n in names if n.startswith(("tests/", "benchmarks/", "deploy/"))] == []


def test_the_stand_in_is_importable_from_the_source_tree_only(tmp_path: Path) -> None:
    """`make test`, `make demo` and `make bench` run from the repository root; the editable
    install itself (what `pip install -e .` maps) does not carry it."""

    def where(cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "import standin; print(standin.__file__)"],
            cwd=cwd,
            capture_output=True,
            text=True,
        )

    from_root = where(ROOT)
    assert from_root.returncode == 0, from_root.stderr
    assert Path(from_root.stdout.strip()) == ROOT / "standin" / "__init__.py"
    elsewhere = where(tmp_path)
    assert elsewhere.returncode != 0 and "No module named 'standin'" in elsewhere.stderr


def test_migrate_from_an_installed_wheel_in_another_directory(
    wheel: Path, empty_database: Engine, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    install_into_target(wheel, target)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        "PYTHONPATH": str(target),
        "PATH": "/usr/bin:/bin",
        "THULIUM_LOG_FORMAT": "text",
        "DATABASE_URL": empty_database.url.render_as_string(hide_password=False),
    }
    probe = subprocess.run(
        [sys.executable, "-c", "import etl; print(etl.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.startswith(str(target))  # the wheel, not the source tree

    done = subprocess.run(
        [sys.executable, "-m", "etl", "migrate"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
    assert f"upgraded from empty to {head_revision()}" in done.stderr
    with empty_database.connect() as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version"))
        assert revision.scalar_one() == head_revision()
