"""Real dbt (the ``dbt`` extra; ``make test`` installs it in a virtual environment of its own
and names it in ``ETL_DBT``), run on a dbt project of the test's own that installs the package
in ``integrations/dbt`` the way an analytics project does, against a test database."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import URL

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "integrations" / "dbt"


def dbt_executable() -> str:
    found = os.environ.get("ETL_DBT") or shutil.which("dbt")
    if not found or not Path(found).exists():
        pytest.fail(
            "dbt is not installed: run the suite with `make test`, which installs the dbt extra "
            "in .venv/dbt and names it in ETL_DBT",
            pytrace=False,
        )
    return found


@dataclass(frozen=True)
class DbtProject:
    """A dbt project in ``directory`` whose only dependency is thulium-etl's package."""

    directory: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``dbt ARGS`` in the project; its exit code and output (no colours, no tracking)."""
        where = ["--project-dir", str(self.directory), "--profiles-dir", str(self.directory)]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "DO_NOT_TRACK": "1",  # no usage statistics sent: this machine has no network
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_USE_COLORS": "false",
        }
        return subprocess.run(
            [dbt_executable(), *args, *where],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )


def dbt_project(directory: Path, database: URL, *, schema: str = "public") -> DbtProject:
    """Write a project that reads thulium-etl's tables in ``schema`` of ``database``, and
    install the package (``dbt deps``: a local package, nothing downloaded)."""
    directory.mkdir(parents=True, exist_ok=True)
    project = {
        "name": "analytics",
        "version": "1.0",
        "config-version": 2,
        "profile": "analytics",
        "vars": {"thulium_etl_schema": schema},
    }
    socket_directory = database.query.get("host")
    output = {
        "type": "postgres",
        "host": socket_directory if isinstance(socket_directory, str) else database.host,
        "port": database.port or 5432,
        "user": database.username,
        "password": database.password or "",
        "dbname": database.database,
        "schema": "analytics",
        "threads": 4,
    }
    profiles = {"analytics": {"target": "test", "outputs": {"test": output}}}
    files = {
        "dbt_project.yml": project,
        "packages.yml": {"packages": [{"local": str(PACKAGE)}]},
        "profiles.yml": profiles,
    }
    for name, content in files.items():
        (directory / name).write_text(yaml.safe_dump(content, sort_keys=False))
    installed = DbtProject(directory)
    deps = installed.run("deps")
    assert deps.returncode == 0, deps.stdout + deps.stderr
    return installed
