"""A read-only role (``grant-read``) cannot stop the job: whatever it may lock, sync and
migrate go on.

Each test grants a role of its own, then has it do everything such a role can to stand in
the job's way (:func:`_obstructing`), as a hostile or careless BI tool might, and runs the job.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import pytest
from psycopg import errors, sql
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl.grants import READABLE
from standin import StandIn
from tests.helpers.cli import make_env, run_cli, spawn_cli
from tests.helpers.data import seed_campaigns
from tests.helpers.roles import connect_as

IDS = ["00001", "00002"]


def _advisory_key(scope: str) -> int:
    """An advisory lock key earlier versions of the job used: they follow from its source."""
    digest = hashlib.blake2b(f"thulium-etl sync {scope}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def _obstructing(db_url: URL, role: str) -> Iterator[None]:
    """For the block, ``role`` holds every lock it can that the job might want: the advisory
    keys of the run lock and of migrate that earlier versions used, and a read of every table
    and view it was granted, in a transaction left open."""
    with connect_as(db_url, role) as conn:
        for scope in ("", "migrate", "shard 0/2"):
            conn.execute("SELECT pg_advisory_lock(%s)", [_advisory_key(scope)])
        with conn.transaction():
            for relation in READABLE:
                conn.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(sql.Identifier(relation)))
            yield


@pytest.fixture
def obstructed(migrated: Engine, db_url: URL, reader_role: str, api: StandIn) -> Iterator[str]:
    """A role granted read access that obstructs the job for the test: its name."""
    env = make_env(api, db_url, IDS)
    assert run_cli("grant-read", reader_role, env=env).code == 0
    with _obstructing(db_url, reader_role):
        yield reader_role


def test_a_sync_runs_whatever_a_read_only_role_locks(
    api: StandIn, db_url: URL, migrated: Engine, obstructed: str
) -> None:
    seed_campaigns(api, IDS)

    result = run_cli("sync", env=make_env(api, db_url, IDS))

    assert result.code == 0, result.err
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT outcome FROM sync_runs")).scalar_one() == "succeeded"


def test_a_migrate_runs_whatever_a_read_only_role_locks(
    api: StandIn, db_url: URL, obstructed: str
) -> None:
    migrate = spawn_cli("migrate", env=make_env(api, db_url, IDS))

    _, err = migrate.communicate(timeout=30)  # it used to wait for the role for good

    assert migrate.returncode == 0, err
    assert "nothing to do" in err


def test_a_read_only_role_cannot_lock_the_run_lock(
    api: StandIn, db_url: URL, migrated: Engine, reader_role: str
) -> None:
    assert run_cli("grant-read", reader_role, env=make_env(api, db_url, IDS)).code == 0

    with connect_as(db_url, reader_role) as conn:
        for statement in (
            "SELECT scope FROM run_locks FOR UPDATE",
            "SELECT scope FROM run_locks FOR KEY SHARE",
            "LOCK TABLE run_locks IN ACCESS SHARE MODE",
        ):
            with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)
