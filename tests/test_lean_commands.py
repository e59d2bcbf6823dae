"""A command imports only what it needs, so it starts fast: ``runs`` and ``migrate`` never
load the HTTP stack, ``sync`` never loads Alembic, metrics are loaded only when asked for, and
``--help`` loads no database library at all.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from standin import StandIn
from tests.helpers.cli import ROOT, make_env
from tests.helpers.data import seed_campaigns

HEAVY = ("requests", "urllib3", "tenacity", "alembic", "prometheus_client", "sqlalchemy", "psycopg")
_PROBE = (
    "import json, sys\n"
    "from etl.cli import main\n"
    "code = main(sys.argv[1:])\n"
    f"print(json.dumps([code, sorted(m for m in {HEAVY} if m in sys.modules)]))\n"
)


def imported_by(argv: list[str], env: dict[str, str]) -> tuple[int, set[str]]:
    """Run a command in a fresh interpreter: its exit code, and which heavy modules it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    code, modules = json.loads(done.stdout.splitlines()[-1])
    return code, set(modules)


@pytest.mark.parametrize("command", [["runs"], ["migrate"]])
def test_database_commands_never_load_the_http_stack(
    api: StandIn, db_url: URL, migrated: Engine, command: list[str]
) -> None:
    code, loaded = imported_by(command, make_env(api, db_url, ["00001"]))

    assert code == 0
    assert not loaded & {"requests", "urllib3", "tenacity", "prometheus_client"}, loaded


def test_sync_never_loads_alembic_nor_metrics_it_was_not_asked_for(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, ["00001"])

    code, loaded = imported_by(["sync"], make_env(api, db_url, ["00001"]))

    assert code == 0
    assert {"requests", "tenacity"} <= loaded
    assert not loaded & {"alembic", "prometheus_client"}, loaded


@pytest.mark.parametrize(
    "command", [[], ["sync"], ["check"], ["runs"], ["migrate"], ["grant-read"]]
)
def test_help_loads_neither_the_database_nor_the_http_stack(command: list[str]) -> None:
    code, loaded = imported_by([*command, "--help"], {})

    assert code == 0
    assert loaded == set(), loaded
