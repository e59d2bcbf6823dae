"""Locks held by sessions of the test's own: another sync's run lock (as a running
``thulium-etl sync`` holds it, see ``etl.lock``), a DBA's lock on a table, and what the job's
own sessions are doing meanwhile."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from etl.database import APPLICATION_NAME
from etl.lock import scope_of
from etl.shards import Shard
from tests.helpers.databases import libpq

#: The application name of the sessions that hold a lock for a test: messages name it.
HOLDER_APPLICATION = "lock-holder-of-the-test"
#: A condition on ``pg_stat_activity``: the session waits for a lock.
WAITING = "wait_event_type = 'Lock'"


@contextlib.contextmanager
def holding_run_lock(
    db_url: URL, shard: Shard | None = None, *, schema: str = "public"
) -> Iterator[int]:
    """Hold the run lock of ``shard`` (None: an unsharded run) of the job in ``schema`` for
    the block; yields the holding session's pid."""
    scope = scope_of(shard)
    with psycopg.connect(
        libpq(db_url), application_name=HOLDER_APPLICATION, options=f"-c search_path={schema}"
    ) as holder:
        holder.execute("INSERT INTO run_locks (scope) VALUES (%s) ON CONFLICT DO NOTHING", [scope])
        holder.commit()
        holder.execute("SELECT scope FROM run_locks WHERE scope = %s FOR UPDATE", [scope])
        yield holder.info.backend_pid
        holder.rollback()


@contextlib.contextmanager
def dba_lock(db_url: URL, table: str, mode: str = "ACCESS EXCLUSIVE") -> Iterator[int]:
    """A DBA's session holding ``LOCK TABLE table IN mode MODE`` for the block; yields its
    pid."""
    with psycopg.connect(libpq(db_url), application_name=HOLDER_APPLICATION) as dba:
        dba.execute(
            sql.SQL("LOCK TABLE {} IN {} MODE").format(sql.Identifier(table), sql.SQL(mode))
        )
        yield dba.info.backend_pid
        dba.rollback()


def job_sessions(db_url: URL, *, condition: str, terminate: bool = False) -> int:
    """How many of the job's sessions meet ``condition``; with ``terminate``, end them."""
    what = "pg_terminate_backend(pid)" if terminate else "*"
    with psycopg.connect(libpq(db_url), autocommit=True) as admin:
        row = admin.execute(
            sql.SQL(
                "SELECT count({}) FROM (SELECT pid FROM pg_stat_activity "
                "WHERE application_name = %s AND datname = %s AND {} OFFSET 0) AS job"
            ).format(sql.SQL(what), sql.SQL(condition)),  # OFFSET 0: filtered before any ends
            (APPLICATION_NAME, db_url.database),
        ).fetchone()
    return int(row[0]) if row else 0
