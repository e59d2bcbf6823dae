"""W2: 4,000 campaigns of 50 statuses (200,000 rows), no latency.

Write throughput of a first sync against a plain COPY of the same rows; then a re-sync with
nothing changed and one with every 10th name changed: rows rewritten and dead tuples from
``pg_stat_user_tables``, WAL from ``pg_current_wal_lsn()`` (split by table with
``pg_walinspect``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from benchmarks import targets as T
from benchmarks.common import MB, STATUSES, campaign_ids, say
from benchmarks.postgres import Server, connect, conninfo
from benchmarks.processes import JobRun, run_job
from benchmarks.results import Figure, Results
from benchmarks.standin_process import (
    RENAME_EVERY,
    RENAMED_SUFFIX,
    StandInProcess,
    campaign_statuses,
)
from benchmarks.stats import (
    OTHER_DATABASES,
    stats_delta,
    table_stats,
    try_walinspect,
    wait_backends_gone,
    wal_bytes,
    wal_lsn,
    wal_records,
    wal_split,
)

CAMPAIGNS = 4_000
ROWS = CAMPAIGNS * STATUSES


def run(args: argparse.Namespace, server: Server, standin: StandInProcess, res: Results) -> None:
    say(f"W2: {CAMPAIGNS} campaigns x {STATUSES} statuses ({ROWS:,} rows), no latency")
    standin.serve(CAMPAIGNS, latency=0.0)
    url = server.fresh("w2")
    details: dict[str, Any] = {}
    with connect(url) as conn:
        walinspect = try_walinspect(conn)
        copy_rate, fk_rate = _copy_references(server, url, res, details)
        first = run_job("w2-first", url, standin, campaign_ids(CAMPAIGNS))
        details["first"] = first.details()
        _first_sync(first, copy_rate, fk_rate, res)
        same, lsn0, lsn1 = _measured(conn, walinspect, "w2-resync-unchanged", url, standin)
        details["resync_unchanged"] = {
            **same.details(),
            "wal_records": wal_records(conn, lsn0, lsn1) if walinspect else [],
        }
        _resync_unchanged(same, res)
        standin.serve(CAMPAIGNS, latency=0.0, renamed=True)
        ten, _, _ = _measured(conn, walinspect, "w2-resync-10pct", url, standin)
        _resync_renamed(ten, conn, res, details)
    res.add(Figure("W2 job peak RSS (first sync)", first.process.rss_mb, "MB"))
    res.details["w2"] = details


def copy_reference(url: URL, n: int, *, into_statuses: bool = False) -> float:
    """Seconds for one COPY of the same rows, in one transaction, into an empty copy of
    ``statuses`` (``LIKE statuses INCLUDING ALL``: its columns, defaults, primary key and
    index, not its foreign keys) or, with ``into_statuses``, into the empty ``statuses``
    itself, foreign keys included (its campaigns are inserted first)."""
    now = datetime.now(UTC)
    rows = [
        (
            f"{i:05d}",
            s["status_id"],
            s["system_status"],
            s["dictionary_status_id"],
            s["name"],
            now,
            now,
            None,
        )
        for i in range(1, n + 1)
        for s in campaign_statuses(i)
    ]
    table = "statuses" if into_statuses else "statuses_copy"
    with psycopg.connect(conninfo(url)) as conn:
        if into_statuses:
            conn.execute(
                "INSERT INTO campaigns (campaign_id) SELECT unnest(%s::text[])", (campaign_ids(n),)
            )
        else:
            conn.execute("DROP TABLE IF EXISTS statuses_copy")
            conn.execute("CREATE TABLE statuses_copy (LIKE statuses INCLUDING ALL)")
        conn.commit()
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                f"COPY {table} (campaign_id, status_id, system_status, dictionary_status_id, "
                "name, first_seen_at, updated_at, deleted_at) FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - started
        if not into_statuses:
            conn.execute("DROP TABLE statuses_copy")
            conn.commit()
    return seconds


def _copy_references(
    server: Server, url: URL, res: Results, details: dict[str, Any]
) -> tuple[float, float]:
    """Rows per second of the plain COPY and of the COPY into statuses itself."""
    copy_seconds = copy_reference(url, CAMPAIGNS)
    copy_rate = ROWS / copy_seconds
    details["copy_seconds"] = copy_seconds
    res.add(
        Figure(
            "W2 plain COPY into an empty statuses copy",
            copy_rate,
            "rows/s",
            f"{ROWS:,} rows in {copy_seconds:.2f} s",
        )
    )
    fk_seconds = copy_reference(server.fresh("w2_copy_fk"), CAMPAIGNS, into_statuses=True)
    fk_rate = ROWS / fk_seconds
    details["copy_into_statuses_with_fks_seconds"] = fk_seconds
    res.add(
        Figure(
            "  context: plain COPY into statuses itself (with its 2 foreign keys)",
            fk_rate,
            "rows/s",
            f"{ROWS:,} rows in {fk_seconds:.2f} s",
            fk_rate / copy_rate,
            "x COPY",
        )
    )
    return copy_rate, fk_rate


def _first_sync(first: JobRun, copy_rate: float, fk_rate: float, res: Results) -> None:
    write = first.write_seconds
    rate = ROWS / write if write else None
    res.details["w2_write_throughput"] = rate
    res.add(
        Figure.held_to(
            T.W2_COPY,
            "W2 first sync write throughput (rows / write_seconds)",
            rate,
            "rows/s",
            compared=rate / copy_rate if rate else None,
            valid=first.synced_all(CAMPAIGNS),
            ratio=rate / copy_rate if rate else None,
            ratio_of="x COPY",
        )
    )
    res.add(
        Figure(
            "  same, against the COPY into statuses with its foreign keys",
            rate,
            "rows/s",
            ratio=rate / fk_rate if rate else None,
            ratio_of="x that COPY",
        )
    )
    wall = first.process.wall
    res.add(
        Figure(
            "W2 first sync, whole process",
            ROWS / wall,
            "rows/s",
            f"{wall:.2f} s for {ROWS:,} rows",
            ROWS / wall / copy_rate,
            "x COPY",
        )
    )


@dataclass
class Change:
    """What a job changed in its database: table statistics and WAL."""

    job: JobRun
    delta: dict[str, dict[str, int]]
    wal: int  # bytes, the whole server's LSN difference
    split: dict[str, dict[str, int]]  # by table, if pg_walinspect is there

    @property
    def own_wal(self) -> int:
        """The WAL of this database's records (of the whole server without pg_walinspect)."""
        return self.wal - self.split.get(OTHER_DATABASES, {}).get("bytes", 0)

    @property
    def statuses(self) -> dict[str, int]:
        return self.delta.get("statuses", {})

    def details(self) -> dict[str, Any]:
        return {
            **self.job.details(),
            "stats_delta": self.delta,
            "wal": self.wal,
            "wal_split": self.split,
        }


def _measured(
    conn: psycopg.Connection[Any], walinspect: bool, tag: str, url: URL, standin: StandInProcess
) -> tuple[Change, str, str]:
    """Run a sync and read what it changed; also the WAL range it wrote."""
    wait_backends_gone(conn)
    before, lsn0 = table_stats(conn), wal_lsn(conn)
    job = run_job(tag, url, standin, campaign_ids(CAMPAIGNS))
    wait_backends_gone(conn)
    after, lsn1 = table_stats(conn), wal_lsn(conn)
    split = wal_split(conn, lsn0, lsn1) if walinspect else {}
    return Change(job, stats_delta(before, after), wal_bytes(conn, lsn0, lsn1), split), lsn0, lsn1


def _what(change: Change) -> str:
    return "this database's records" if change.split else "pg_current_wal_lsn() difference"


def _resync_unchanged(same: Change, res: Results) -> None:
    st = same.statuses
    untouched = st.get("n_tup_ins") == 0 and st.get("n_tup_del") == 0
    res.add(
        Figure.held_to(
            T.W2_REWRITTEN,
            "W2 re-sync unchanged: statuses rows rewritten (n_tup_upd)",
            st.get("n_tup_upd"),
            "",
            compared=st.get("n_tup_upd"),
            valid=same.job.synced_all(CAMPAIGNS) and untouched,
        )
    )
    res.add(
        Figure.held_to(
            T.W2_DEAD,
            "W2 re-sync unchanged: statuses dead tuples added",
            st.get("n_dead_tup"),
            "",
            compared=st.get("n_dead_tup"),
        )
    )
    own = same.own_wal
    res.add(
        Figure.held_to(
            T.W2_WAL,
            f"W2 re-sync unchanged: WAL ({_what(same)})",
            own / MB,
            "MB",
            compared=own / MB,
            ratio_of="x limit",
        )
    )
    _wal_of_which(same, res)
    for table in ("campaigns", "sync_run_batches", "sync_runs"):
        d = same.delta.get(table, {})
        res.add(
            Figure(
                f"  {table}: rows inserted / updated",
                None,
                "",
                f"{d.get('n_tup_ins')} / {d.get('n_tup_upd')}",
            )
        )
    res.add(
        Figure(
            "W2 re-sync unchanged, whole process",
            same.job.process.wall,
            "s",
            f"writing {same.job.summary.get('write_seconds')} s",
        )
    )


def _wal_of_which(change: Change, res: Results) -> None:
    """The unchanged re-sync's WAL by table, page images apart."""
    if not change.split:
        return
    res.add(Figure("  pg_current_wal_lsn() difference, whole server", change.wal / MB, "MB"))
    images = sum(e["fpi"] for k, e in change.split.items() if k != OTHER_DATABASES)
    res.add(
        Figure(
            "  this database's WAL without full-page images (checkpoint timing)",
            (change.own_wal - images) / MB,
            "MB",
            f"page images {images / MB:.2f} MB",
        )
    )
    for table, entry in change.split.items():
        res.add(
            Figure(
                f"  WAL of which: {table}",
                entry["bytes"] / MB,
                "MB",
                f"{entry['records']:,} records, {entry['fpi'] / MB:.2f} MB page images",
            )
        )


def _resync_renamed(
    ten: Change, conn: psycopg.Connection[Any], res: Results, details: dict[str, Any]
) -> None:
    changed = ROWS // RENAME_EVERY
    stored = conn.execute(
        "SELECT count(*) FILTER (WHERE name LIKE %s), count(*) FROM statuses",
        (f"%{RENAMED_SUFFIX}",),
    ).fetchone()
    details["resync_10pct"] = {**ten.details(), "stored_renamed_and_total": list(stored or ())}
    st = ten.statuses
    res.add(
        Figure.held_to(
            T.W2_RENAMED,
            "W2 re-sync 10% names changed: statuses rows rewritten",
            st.get("n_tup_upd"),
            "",
            compared=st.get("n_tup_upd"),
            valid=ten.job.synced_all(CAMPAIGNS)
            and stored is not None
            and tuple(stored) == (changed, ROWS)
            and st.get("n_tup_ins") == 0
            and st.get("n_tup_del") == 0,
        )
    )
    res.add(
        Figure(
            f"W2 re-sync 10% changed: WAL ({_what(ten)})",
            ten.own_wal / MB,
            "MB",
            f"{changed:,} rows updated",
        )
    )
    res.add(
        Figure(
            "W2 re-sync 10% changed, whole process",
            ten.job.process.wall,
            "s",
            f"writing {ten.job.summary.get('write_seconds')} s",
        )
    )
