"""What a sync wrote, read from the server: table statistics and WAL.

A backend flushes its table statistics when it exits, so they are read once the job's
backends are gone (:func:`wait_backends_gone`). The WAL is the LSN difference, split by table
with ``pg_walinspect`` where the server has it (other databases' records left out).
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from benchmarks.common import say

OTHER_DATABASES = "other databases on the server"


def wait_backends_gone(conn: psycopg.Connection[Any], timeout: float = 15.0) -> None:
    """Wait until only this session is connected: a backend flushes its stats on exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
        if row and row[0] == 0:
            break
        time.sleep(0.05)
    conn.execute("SELECT pg_stat_clear_snapshot()")


_STAT_COLUMNS = ("n_tup_ins", "n_tup_upd", "n_tup_hot_upd", "n_tup_del", "n_dead_tup", "n_live_tup")


def table_stats(conn: psycopg.Connection[Any], schema: str = "public") -> dict[str, dict[str, int]]:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = conn.execute(
        f"SELECT relname, {', '.join(_STAT_COLUMNS)} FROM pg_stat_user_tables "
        "WHERE schemaname = %s",
        (schema,),
    ).fetchall()
    return {r[0]: dict(zip(_STAT_COLUMNS, map(int, r[1:]), strict=True)) for r in rows}


def stats_delta(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    zero = dict.fromkeys(_STAT_COLUMNS, 0)
    return {
        table: {k: v - before.get(table, zero)[k] for k, v in counts.items()}
        for table, counts in after.items()
    }


def wal_lsn(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def wal_bytes(conn: psycopg.Connection[Any], start: str, end: str) -> int:
    row = conn.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", (end, start)).fetchone()
    assert row is not None
    return int(row[0])


def try_walinspect(conn: psycopg.Connection[Any]) -> bool:
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        return True
    except psycopg.Error as exc:
        say(f"pg_walinspect unavailable ({exc.diag.message_primary}); WAL is reported as a total")
        return False


def wal_split(conn: psycopg.Connection[Any], start: str, end: str) -> dict[str, dict[str, int]]:
    """WAL records in [start, end) by table (indexes count with their table): bytes (of
    which full-page images) and records. Records touching no relation (commits, running
    transactions, checkpoints) are their own group; so are other databases' records. Empty
    when the server has already recycled part of the range (other databases writing a lot):
    the figure is then the whole server's LSN difference."""
    try:
        return _wal_split(conn, start, end)
    except psycopg.Error as exc:
        say(f"WAL of [{start}, {end}) not readable any more ({exc}); reporting the total")
        return {}


def _wal_split(conn: psycopg.Connection[Any], start: str, end: str) -> dict[str, dict[str, int]]:
    db_row = conn.execute(
        "SELECT oid FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    assert db_row is not None
    db_oid = int(db_row[0])
    names: dict[int, str] = {}
    for filenode, relname, nspname, owner in conn.execute(
        """
        SELECT pg_relation_filenode(c.oid), c.relname, n.nspname, t.relname
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_index i ON i.indexrelid = c.oid
        LEFT JOIN pg_class t ON t.oid = i.indrelid
        WHERE pg_relation_filenode(c.oid) IS NOT NULL
        """
    ):
        if nspname in ("pg_catalog", "pg_toast", "information_schema"):
            names[int(filenode)] = "system catalogs"
        else:
            names[int(filenode)] = str(owner or relname)
    split: dict[str, dict[str, int]] = {}
    for db, filenode, size, fpi, records in conn.execute(
        r"""
        SELECT substring(block_ref from 'rel \d+/(\d+)/\d+')::oid,
               substring(block_ref from 'rel \d+/\d+/(\d+)')::oid,
               sum(record_length), sum(fpi_length), count(*)
        FROM pg_get_wal_records_info(%s::pg_lsn, %s::pg_lsn)
        GROUP BY 1, 2
        """,
        (start, end),
    ):
        if db is None:
            key = "no relation (commit, xact, checkpoint records)"
        elif int(db) == 0:
            key = "system catalogs"
        elif int(db) != db_oid:
            key = OTHER_DATABASES
        else:
            key = names.get(int(filenode), "other relations of this database")
        entry = split.setdefault(key, {"bytes": 0, "fpi": 0, "records": 0})
        entry["bytes"] += int(size)
        entry["fpi"] += int(fpi)
        entry["records"] += int(records)
    return dict(sorted(split.items(), key=lambda kv: -kv[1]["bytes"]))


def wal_records(conn: psycopg.Connection[Any], start: str, end: str) -> list[dict[str, Any]]:
    """WAL in [start, end) by resource manager and record type, for the details file; empty
    when part of the range is recycled already (as for :func:`wal_split`)."""
    try:
        rows = conn.execute(
            'SELECT "resource_manager/record_type", count, record_size, fpi_size, combined_size '
            "FROM pg_get_wal_stats(%s::pg_lsn, %s::pg_lsn, true) WHERE count > 0 "
            "ORDER BY combined_size DESC",
            (start, end),
        ).fetchall()
    except psycopg.Error:
        return []
    return [
        dict(zip(("record", "count", "record_bytes", "fpi_bytes", "bytes"), r, strict=True))
        for r in rows
    ]
