"""thulium-etl benchmarks: the real CLI against the Thulium stand-in and a real Postgres.

Workloads (the stand-in serves campaigns 00001..N, 50 statuses each, on loopback):

- W1: 1,000 campaigns, 50 ms per answer: first sync at concurrency 8 and 16 against the
  latency bound ceil(campaigns / concurrency) x latency, a sequential baseline (concurrency
  1) and the dlt peer (``benchmarks/dlt_pipeline.py``) at 16 extract workers.
- W2: 4,000 campaigns (200,000 rows), no latency: write throughput against a plain COPY of
  the same rows, then re-syncs with nothing changed and with 10% of the names changed
  (rows rewritten from ``pg_stat_user_tables``, WAL from ``pg_current_wal_lsn()``).
- W3: 10,000 campaigns (500,000 rows), no latency: peak RSS of the job, and at 2,500.
- WC: ``thulium-etl check`` of 400 campaigns at 300 ms per answer and the default
  concurrency, against the latency bound ceil(400 / 8) x 300 ms plus start-up.

Each job is ``python -m etl sync`` in its own process, timed as a whole; its peak RSS is the
kernel's ``ru_maxrss`` from ``wait4``. Each workload gets a fresh database. Prints a table of
every figure with its target and writes it to ``.bench/results.json``.

Usage: ``make bench`` or ``python benchmarks/run.py [--quick] [--database-url URL]``.
The database server: ``--database-url``, else ``ETL_BENCH_DATABASE_URL``, else
``ETL_TEST_DATABASE_URL``, else the embedded Postgres of the ``embedded`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import platform
import queue
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests
from sqlalchemy.engine import URL, make_url

from standin import StandIn, sample_statuses
from standin.embedded import embedded_postgres

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
LOG_DIR = BENCH_DIR / "logs"

USER, PASSWORD = "bench", "bench-Pa55"
STATUSES = 50  # per campaign, every workload
LATENCY = 0.05  # seconds per answer in W1
W1_CAMPAIGNS, W2_CAMPAIGNS, W3_CAMPAIGNS, W3_SMALL = 1_000, 4_000, 10_000, 2_500
CHECK_CAMPAIGNS, CHECK_LATENCY = 400, 0.3
# W4: answers just under the 5 MB cap the Kubernetes ConfigMap sets (THULIUM_MAX_BODY_BYTES)
W4_CAMPAIGNS, W4_STATUSES, W4_MAX_BODY = 16, 40_000, 5_000_000  # ~4.9 MB each
RENAME_EVERY = 10  # W2: every 10th status of each campaign gets a new name (10% of rows)
RENAMED_SUFFIX = " (zmieniony)"
DEFAULT_CONCURRENCY = 8  # the job's default; W2 and W3 run with it

# Targets from the issue.
W1_BOUND_FACTOR = 1.25  # first sync within 1.25x of the latency bound
STANDIN_BOUND_FACTOR = 1.10  # the equipment itself must get within 10% of the bound
SEQUENTIAL_SPEEDUP = 10.0  # concurrency 16 vs concurrency 1
DLT_SPEEDUP = 1.7  # ours at 16 vs dlt at 16 workers
COPY_FRACTION = 0.5  # job write throughput vs a plain COPY
CHECK_BOUND_FACTOR = 1.5  # check within 1.5x of the latency bound, plus start-up
WAL_LIMIT = 1_000_000  # bytes, re-sync with nothing changed
RSS_LIMIT_MB = 120.0  # MB = 10^6 bytes
RSS_FLAT = 1.10  # RSS at 10,000 campaigns vs 2,500: "roughly flat", taken as within 10%
MB = 1_000_000
POD_MEMORY_LIMIT_MB = 512 * 2**20 / MB  # deploy/kubernetes: limits.memory 512Mi
BIG_ANSWER_THROUGHPUT = 0.5  # W4 rows per write second vs W2's: big answers are not slower

_T0 = time.perf_counter()


def say(message: str) -> None:
    print(f"[bench {time.perf_counter() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def campaign_ids(n: int) -> list[str]:
    return [f"{i:05d}" for i in range(1, n + 1)]


def campaign_statuses(
    i: int, *, renamed: bool = False, count: int = STATUSES
) -> list[dict[str, object]]:
    """Campaign ``i``'s answer: ``sample_statuses`` (as ``python -m standin`` serves)."""
    cid = f"{i:05d}"
    statuses = sample_statuses(cid, count, seed=i)
    if renamed:
        for k in range(0, len(statuses), RENAME_EVERY):
            statuses[k] = {**statuses[k], "name": f"{statuses[k]['name']}{RENAMED_SUFFIX}"}
    return statuses


def bound(campaigns: int, concurrency: int, latency: float = LATENCY) -> float:
    """The latency bound: ceil(campaigns / concurrency) rounds of one answer each."""
    return math.ceil(campaigns / concurrency) * latency


# -- the stand-in, in a process of its own --------------------------------------------------
# The job, dlt and the harness's own client threads never share a GIL with the server.


def _standin_main(conn: multiprocessing.connection.Connection) -> None:
    standin = StandIn(user=USER, password=PASSWORD).start()
    conn.send(standin.url)
    while True:
        command, arg = conn.recv()
        if command == "stop":
            break
        if command == "serve":
            n, latency, renamed, count = arg
            standin.latency = latency
            for i in range(1, n + 1):
                standin.set_statuses(f"{i:05d}", campaign_statuses(i, renamed=renamed, count=count))
            standin.reset_counts()
            conn.send(n)
        elif command == "requests":
            total = standin.total_requests
            standin.reset_counts()
            conn.send(total)
    standin.stop()
    conn.send("stopped")


class StandInProcess:
    """``standin.StandIn`` served from a child process, configured over a pipe."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_standin_main, args=(child,), daemon=True, name="thulium-standin"
        )
        self._proc.start()
        self.url: str = self._conn.recv()

    def _ask(self, command: str, arg: object = None) -> Any:
        self._conn.send((command, arg))
        return self._conn.recv()

    def serve(
        self, campaigns: int, *, latency: float, renamed: bool = False, statuses: int = STATUSES
    ) -> None:
        self._ask("serve", (campaigns, latency, renamed, statuses))

    def requests_since_last(self) -> int:
        """Requests served since the last call (or ``serve``); resets the count."""
        return int(self._ask("requests"))

    def stop(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._ask("stop")
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()


def standin_alone(url: str, ids: Sequence[str], concurrency: int) -> float:
    """Fetch every campaign with ``concurrency`` keep-alive clients; the wall time."""
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for cid in ids:
        todo.put(cid)
    failures: list[str] = []

    def client() -> None:
        with requests.Session() as session:
            session.auth = (USER, PASSWORD)
            session.headers["Accept"] = "application/json"
            while True:
                try:
                    cid = todo.get_nowait()
                except queue.Empty:
                    return
                response = session.get(f"{url}/outbounds/{cid}/statuses", timeout=30)
                if response.status_code != 200 or not response.content:
                    failures.append(f"{cid}: HTTP {response.status_code}")

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"the stand-in failed {len(failures)} requests: {failures[:3]}")
    return wall


# -- the database -------------------------------------------------------------------------


def conninfo(url: URL) -> str:
    """A libpq URL (what psql, psycopg and the job's DATABASE_URL accept)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Server:
    """The Postgres server: fresh databases per workload, dropped at the end."""

    def __init__(self, admin: URL, *, keep: bool) -> None:
        self.admin = admin
        self.keep = keep
        self.created: list[str] = []

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(conninfo(self.admin), autocommit=True)

    def version(self) -> str:
        with self._admin() as conn:
            row = conn.execute("SELECT version()").fetchone()
        return str(row[0]) if row else "?"

    def fresh(self, name: str, *, migrate: bool = True) -> URL:
        name = f"thulium_bench_{name}"
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        url = self.admin.set(database=name)
        if migrate:
            done = subprocess.run(
                [sys.executable, "-m", "etl", "--log-format", "json", "migrate"],
                env={**job_env_base(), "DATABASE_URL": conninfo(url)},
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"thulium-etl migrate failed on {name}:\n{done.stderr}")
        return url

    def drop_all(self) -> None:
        if self.keep:
            return
        with self._admin() as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def connect(url: URL) -> psycopg.Connection[Any]:
    return psycopg.connect(conninfo(url), autocommit=True)


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


OTHER_DATABASES = "other databases on the server"


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
    """WAL in [start, end) by resource manager and record type, for the details file."""
    rows = conn.execute(
        'SELECT "resource_manager/record_type", count, record_size, fpi_size, combined_size '
        "FROM pg_get_wal_stats(%s::pg_lsn, %s::pg_lsn, true) WHERE count > 0 "
        "ORDER BY combined_size DESC",
        (start, end),
    ).fetchall()
    return [
        dict(zip(("record", "count", "record_bytes", "fpi_bytes", "bytes"), r, strict=True))
        for r in rows
    ]


# -- running the job and dlt ------------------------------------------------------------

# Peak RSS is the kernel's high-water mark of the process's own address space (VmHWM), read
# at exit. Not wait4's ru_maxrss: Linux carries the parent's high-water mark over a
# fork + exec into it, so a 140 MB harness would make every child "use" 140 MB.
_PEAK_RSS_WRAPPER = """
import atexit, os, runpy, sys
def _peak_rss():
    with open('/proc/self/status') as status:
        kb = next(line.split()[1] for line in status if line.startswith('VmHWM:'))
    with open(os.environ['BENCH_PEAK_RSS_FILE'], 'w') as out:
        out.write(kb)
atexit.register(_peak_rss)
kind, target = sys.argv[1], sys.argv[2]
sys.argv = sys.argv[2:]
if kind == '-m':
    runpy.run_module(target, run_name='__main__', alter_sys=True)
else:
    runpy.run_path(target, run_name='__main__')
"""


def python_cmd(kind: str, target: str, *args: str) -> list[str]:
    """``python -m target args`` (kind ``-m``) or ``python target args`` (kind ``-p``), run
    through the wrapper that records the peak RSS."""
    return [sys.executable, "-c", _PEAK_RSS_WRAPPER, kind, target, *args]


def job_env_base() -> dict[str, str]:
    """The harness's environment without any setting the job or dlt would pick up."""
    drop = (
        "THULIUM_",
        "DATABASE_URL",
        "DESTINATION__",
        "EXTRACT__",
        "NORMALIZE__",
        "LOAD__",
        "RUNTIME__",
    )
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@dataclass
class ProcessRun:
    """One child process: wall time around the whole process, rusage from wait4."""

    tag: str
    wall: float
    rss_mb: float  # VmHWM at exit; wait4's ru_maxrss if the process died without reporting
    cpu_seconds: float
    exit_code: int
    started_at: float  # time.time() at spawn, to place the job's log timestamps
    log: str


def run_process(
    tag: str, cmd: Sequence[str], env: dict[str, str], *, cwd: Path | None = None
) -> ProcessRun:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / f"{tag}.log"
    out = LOG_DIR / f"{tag}.out"
    peak = LOG_DIR / f"{tag}.peak-rss-kb"
    peak.unlink(missing_ok=True)
    env = {**env, "BENCH_PEAK_RSS_FILE": str(peak)}
    with log.open("wb") as err, out.open("wb") as stdout:
        started_at = time.time()
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), env=env, stdout=stdout, stderr=err, cwd=cwd)
        # wait4, not proc.wait(): it reaps the child *and* returns its rusage (ru_maxrss).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        peak_kb = int(peak.read_text())
    except (OSError, ValueError):
        peak_kb = usage.ru_maxrss  # an upper bound: includes the harness's own pages
    return ProcessRun(
        tag=tag,
        wall=wall,
        rss_mb=peak_kb * 1024 / MB,  # KiB
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        exit_code=proc.returncode,
        started_at=started_at,
        log=str(log),
    )


@dataclass
class JobRun:
    process: ProcessRun
    summary: dict[str, Any]
    startup: float | None  # process start -> "run N started" (imports, schema check, lock)
    shutdown: float | None  # final log line -> process gone
    requests: int


def _log_time(event: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(event["time"])).timestamp()
    except (KeyError, ValueError):
        return None


def run_job(
    tag: str,
    url: URL,
    standin: StandInProcess,
    ids: Sequence[str],
    concurrency: int | None = None,
    **extra_env: str,
) -> JobRun:
    env = {**_job_env(url, standin, ids), **extra_env}
    cmd = python_cmd("-m", "etl", "sync")
    if concurrency is not None:
        cmd += ["--concurrency", str(concurrency)]
    standin.requests_since_last()
    proc = run_process(tag, cmd, env)
    served = standin.requests_since_last()
    events: list[dict[str, Any]] = []
    for line in Path(proc.log).read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    summary: dict[str, Any] = next((e for e in reversed(events) if "write_seconds" in e), {})
    started = next((e for e in events if re.match(r"run \d+ started", str(e.get("message")))), None)
    t_started = _log_time(started) if started else None
    t_final = _log_time(summary) if summary else None
    end = proc.started_at + proc.wall
    job = JobRun(
        process=proc,
        summary=summary,
        startup=(t_started - proc.started_at) if t_started else None,
        shutdown=(end - t_final) if t_final else None,
        requests=served,
    )
    ok = proc.exit_code == 0 and summary.get("campaigns_ok") == len(ids)
    say(
        f"  {tag}: {proc.wall:.2f}s, exit {proc.exit_code}, RSS {proc.rss_mb:.1f} MB, "
        f"CPU {proc.cpu_seconds:.2f}s, {summary.get('campaigns_ok')}/{len(ids)} campaigns, "
        f"rows +{summary.get('rows_inserted')} ~{summary.get('rows_updated')} "
        f"-{summary.get('rows_deleted')}, writing {summary.get('write_seconds')}s, "
        f"{served} requests"
    )
    if not ok:
        tail = "\n".join(Path(proc.log).read_text(errors="replace").splitlines()[-15:])
        say(f"  {tag} did not sync every campaign; log tail:\n{tail}")
    return job


def _job_env(url: URL, standin: StandInProcess, ids: Sequence[str]) -> dict[str, str]:
    return {
        **job_env_base(),
        "DATABASE_URL": conninfo(url),
        "THULIUM_BASE_URL": standin.url,
        "THULIUM_USER": USER,
        "THULIUM_PASSWORD": PASSWORD,
        "THULIUM_CAMPAIGNS": ",".join(ids),
        "THULIUM_LOG_FORMAT": "json",
    }


def run_check(
    tag: str, url: URL, standin: StandInProcess, ids: Sequence[str], *args: str
) -> tuple[ProcessRun, int]:
    """``thulium-etl check`` as a process of its own: its run, and its PASS lines."""
    proc = run_process(tag, python_cmd("-m", "etl", "check", *args), _job_env(url, standin, ids))
    out = (LOG_DIR / f"{tag}.out").read_text(errors="replace").splitlines()
    passed = sum(line.startswith("PASS  campaign ") for line in out)
    say(f"  {tag}: {proc.wall:.2f}s, exit {proc.exit_code}, {passed} campaigns passed")
    return proc, passed


def run_dlt(
    tag: str, url: URL, standin: StandInProcess, campaigns: int, workers: int, pipelines_dir: Path
) -> tuple[ProcessRun, dict[str, Any]]:
    # dlt insists on a password and a host. A server with trust auth never asks for the
    # password; for a Unix socket (?host=/dir, the embedded Postgres) libpq lets the query's
    # host override the placeholder.
    creds = url if url.password else url.set(password="unused-by-trust-auth")
    if not creds.host:
        creds = creds.set(host="localhost")
    cmd = python_cmd(
        "-p",
        str(ROOT / "benchmarks" / "dlt_pipeline.py"),
        "--base-url",
        standin.url,
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--campaigns",
        str(campaigns),
        "--workers",
        str(workers),
        "--pipelines-dir",
        str(pipelines_dir),
    )
    env = {**job_env_base(), "DESTINATION__POSTGRES__CREDENTIALS": conninfo(creds)}
    work = BENCH_DIR / "dlt"  # no .dlt/ config folder of the project's is picked up
    work.mkdir(parents=True, exist_ok=True)
    standin.requests_since_last()
    proc = run_process(tag, cmd, env, cwd=work)
    served = standin.requests_since_last()
    info: dict[str, Any] = {}
    for line in Path(LOG_DIR / f"{tag}.out").read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            info = json.loads(line)
    info["requests"] = served
    say(
        f"  {tag}: {proc.wall:.2f}s, exit {proc.exit_code}, RSS {proc.rss_mb:.1f} MB, "
        f"CPU {proc.cpu_seconds:.2f}s, steps {info.get('steps')}, rows {info.get('rows')}, "
        f"{served} requests"
    )
    if proc.exit_code != 0:
        tail = "\n".join(Path(proc.log).read_text(errors="replace").splitlines()[-15:])
        say(f"  {tag} failed; log tail:\n{tail}")
    return proc, info


# -- figures ------------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    value: float | int | None
    unit: str
    target: str = "-"
    ratio: float | None = None
    ratio_of: str = ""
    ok: bool | None = None  # None: context, not a target

    def cells(self) -> list[str]:
        if self.value is None:
            value = "n/a"
        elif isinstance(self.value, int):
            value = f"{self.value:,} {self.unit}".strip()
        elif abs(self.value) >= 1000:
            value = f"{self.value:,.0f} {self.unit}".strip()
        else:
            value = f"{self.value:.2f} {self.unit}".strip()
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f}{self.ratio_of}"
        ok = {True: "yes", False: "NO", None: "-"}[self.ok]
        return [self.name, value, self.target, ratio, ok]


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        mark = {True: "ok", False: "MISSED", None: "info"}[figure.ok]
        say(f"  => {' | '.join(figure.cells()[:4])} [{mark}]")

    def table(self) -> str:
        head = ["figure", "value", "target", "ratio", "ok?"]
        rows = [f.cells() for f in self.figures]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        line = "-+-".join("-" * w for w in widths)
        out = [" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), line]
        out += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(x.rstrip() for x in out)


def _job_details(job: JobRun) -> dict[str, Any]:
    return {
        **asdict(job.process),
        "summary": job.summary,
        "startup_seconds": job.startup,
        "shutdown_seconds": job.shutdown,
        "requests": job.requests,
    }


def _synced_all(job: JobRun, n: int) -> bool:
    return job.process.exit_code == 0 and job.summary.get("campaigns_ok") == n


# -- workloads ----------------------------------------------------------------------------


def workload_w1(
    args: argparse.Namespace, server: Server, standin: StandInProcess, res: Results
) -> None:
    say(f"W1: {W1_CAMPAIGNS} campaigns x {STATUSES} statuses, {LATENCY * 1000:.0f} ms per answer")
    standin.serve(W1_CAMPAIGNS, latency=LATENCY)
    ids = campaign_ids(W1_CAMPAIGNS)
    details: dict[str, Any] = {}
    reps = args.repeat
    of = f", median of {reps}" if reps > 1 else ""

    for c in (16, DEFAULT_CONCURRENCY):
        wall = standin_alone(standin.url, ids, c)
        limit = bound(W1_CAMPAIGNS, c)
        details[f"standin_alone_c{c}"] = wall
        res.add(
            Figure(
                f"W1 stand-in alone, {c} keep-alive clients",
                wall,
                "s",
                f"<= {STANDIN_BOUND_FACTOR:.2f}x bound {limit:.2f} s",
                wall / limit,
                "x bound",
                wall <= STANDIN_BOUND_FACTOR * limit,
            )
        )

    ours: dict[int, float] = {}  # median wall per concurrency
    for c in (DEFAULT_CONCURRENCY, 16):
        jobs: list[JobRun] = []
        for r in range(1, reps + 1):
            url = server.fresh(f"w1_c{c}")
            jobs.append(run_job(f"w1-c{c}-{r}", url, standin, ids, concurrency=c))
        details[f"c{c}"] = [_job_details(job) for job in jobs]
        walls = [job.process.wall for job in jobs]
        ours[c] = statistics.median(walls)
        limit = bound(W1_CAMPAIGNS, c)
        res.add(
            Figure(
                f"W1 first sync, concurrency {c} (whole process{of})",
                ours[c],
                "s",
                f"<= {W1_BOUND_FACTOR:.2f}x bound {limit:.2f} s",
                ours[c] / limit,
                "x bound",
                all(_synced_all(job, W1_CAMPAIGNS) for job in jobs)
                and ours[c] <= W1_BOUND_FACTOR * limit,
            )
        )
        if reps > 1:
            res.add(
                Figure(
                    f"  runs at concurrency {c}: min / max",
                    min(walls),
                    "s",
                    f"max {max(walls):.2f} s",
                )
            )
        if c == 16:
            startups = [j.startup for j in jobs if j.startup is not None]
            shutdowns = [j.shutdown for j in jobs if j.shutdown is not None]
            writes = [float(j.summary.get("write_seconds") or 0) for j in jobs]
            if startups and shutdowns:
                res.add(
                    Figure(
                        "  of which process start -> run started (imports, checks, lock)",
                        statistics.median(startups),
                        "s",
                    )
                )
                res.add(
                    Figure(
                        "  of which final log line -> process gone",
                        statistics.median(shutdowns),
                        "s",
                    )
                )
            res.add(
                Figure(
                    "  time in write transactions (write_seconds)", statistics.median(writes), "s"
                )
            )
            resync = run_job("w1-c16-resync", url, standin, ids, concurrency=16)
            details["c16_resync"] = _job_details(resync)
            res.add(
                Figure(
                    "W1 re-sync, nothing changed, concurrency 16",
                    resync.process.wall,
                    "s",
                    "-",
                    resync.process.wall / limit,
                    "x bound",
                )
            )
            res.add(Figure("W1 job peak RSS, concurrency 16", jobs[-1].process.rss_mb, "MB"))

    if not args.quick:
        url = server.fresh("w1_c1")
        seq = run_job("w1-c1", url, standin, ids, concurrency=1)
        details["c1"] = _job_details(seq)
        res.add(
            Figure(
                "W1 sequential baseline, concurrency 1",
                seq.process.wall,
                "s",
                "-",
                seq.process.wall / bound(W1_CAMPAIGNS, 1),
                "x bound",
            )
        )
        speedup = seq.process.wall / ours[16]
        res.add(
            Figure(
                "W1 speed-up, concurrency 16 vs 1",
                speedup,
                "x",
                f">= {SEQUENTIAL_SPEEDUP:.0f}x",
                speedup / SEQUENTIAL_SPEEDUP,
                " of target",
                _synced_all(seq, W1_CAMPAIGNS) and speedup >= SEQUENTIAL_SPEEDUP,
            )
        )
        res.add(
            Figure(
                f"W1 speed-up, concurrency {DEFAULT_CONCURRENCY} vs 1",
                seq.process.wall / ours[DEFAULT_CONCURRENCY],
                "x",
            )
        )

    if not args.quick and not args.skip_dlt:
        for workers in args.dlt_workers:
            limit = bound(W1_CAMPAIGNS, workers)
            firsts: list[ProcessRun] = []
            loaded = True
            for r in range(1, reps + 1):
                dlt_url = server.fresh(f"w1_dlt{workers}", migrate=False)
                pipelines = BENCH_DIR / "dlt" / f"pipelines-{workers}"
                shutil.rmtree(pipelines, ignore_errors=True)
                first, info = run_dlt(
                    f"w1-dlt-w{workers}-{r}", dlt_url, standin, W1_CAMPAIGNS, workers, pipelines
                )
                firsts.append(first)
                with connect(dlt_url) as conn:
                    row = conn.execute("SELECT count(*) FROM thulium_dlt.statuses").fetchone()
                loaded = (
                    loaded
                    and first.exit_code == 0
                    and bool(row and row[0] == W1_CAMPAIGNS * STATUSES)
                )
                details.setdefault(f"dlt_w{workers}", []).append(
                    {**asdict(first), "info": info, "rows": row[0] if row else None}
                )
            with connect(dlt_url) as conn:  # re-sync on the last repetition's database
                wait_backends_gone(conn)
                before = table_stats(conn, "thulium_dlt")
                again, info2 = run_dlt(
                    f"w1-dlt-w{workers}-resync", dlt_url, standin, W1_CAMPAIGNS, workers, pipelines
                )
                wait_backends_gone(conn)
                delta = stats_delta(before, table_stats(conn, "thulium_dlt")).get("statuses", {})
            details[f"dlt_w{workers}_resync"] = {
                **asdict(again),
                "info": info2,
                "statuses_delta": delta,
            }
            walls = [p.wall for p in firsts]
            dlt_wall = statistics.median(walls)
            res.add(
                Figure(
                    f"W1 dlt first sync, {workers} extract workers{of}",
                    dlt_wall,
                    "s",
                    "-" if loaded else "did not load every row",
                    dlt_wall / limit,
                    "x bound",
                    None if loaded else False,
                )
            )
            if reps > 1:
                res.add(
                    Figure(
                        f"  dlt runs at {workers} workers: min / max",
                        min(walls),
                        "s",
                        f"max {max(walls):.2f} s",
                    )
                )
            res.add(
                Figure(
                    f"W1 dlt re-sync, nothing changed, {workers} workers",
                    again.wall,
                    "s",
                    f"rows deleted {delta.get('n_tup_del')}, inserted {delta.get('n_tup_ins')}",
                    again.wall / limit,
                    "x bound",
                )
            )
            res.add(Figure(f"W1 dlt peak RSS, {workers} workers", firsts[-1].rss_mb, "MB"))
            if workers == 16:
                speedup = dlt_wall / ours[16]
                res.add(
                    Figure(
                        "W1 ours vs dlt, both at 16 (dlt time / ours)",
                        speedup,
                        "x",
                        f">= {DLT_SPEEDUP}x",
                        speedup / DLT_SPEEDUP,
                        " of target",
                        loaded and speedup >= DLT_SPEEDUP,
                    )
                )
    res.details["w1"] = details


def workload_check(
    args: argparse.Namespace, server: Server, standin: StandInProcess, res: Results
) -> None:
    n, c = CHECK_CAMPAIGNS, DEFAULT_CONCURRENCY
    say(f"WC: check of {n} campaigns, {CHECK_LATENCY * 1000:.0f} ms per answer, concurrency {c}")
    url = server.fresh("check")
    ids = campaign_ids(n)
    standin.serve(n, latency=0.0)
    startup, _ = run_check("check-quick", url, standin, ids, "--quick")
    standin.serve(n, latency=CHECK_LATENCY)
    full, passed = run_check(f"check-{n}", url, standin, ids)
    limit = bound(n, c, CHECK_LATENCY)
    res.add(
        Figure(
            f"WC check, {n} campaigns at {CHECK_LATENCY * 1000:.0f} ms, concurrency {c} "
            "(whole process)",
            full.wall,
            "s",
            f"<= {CHECK_BOUND_FACTOR:.1f}x bound {limit:.2f} s + start-up",
            full.wall / limit,
            "x bound",
            full.exit_code == 0
            and passed == n
            and full.wall <= CHECK_BOUND_FACTOR * limit + startup.wall,
        )
    )
    res.add(Figure("  start-up: check --quick at no latency (one campaign)", startup.wall, "s"))
    res.details["check"] = {"quick": asdict(startup), "full": asdict(full), "passed": passed}


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


def workload_w2(
    args: argparse.Namespace, server: Server, standin: StandInProcess, res: Results
) -> None:
    n, rows = W2_CAMPAIGNS, W2_CAMPAIGNS * STATUSES
    say(f"W2: {n} campaigns x {STATUSES} statuses ({rows:,} rows), no latency")
    standin.serve(n, latency=0.0)
    ids = campaign_ids(n)
    url = server.fresh("w2")
    details: dict[str, Any] = {}
    with connect(url) as conn:
        walinspect = try_walinspect(conn)

        copy_seconds = copy_reference(url, n)
        copy_rate = rows / copy_seconds
        details["copy_seconds"] = copy_seconds
        res.add(
            Figure(
                "W2 plain COPY into an empty statuses copy",
                copy_rate,
                "rows/s",
                f"{rows:,} rows in {copy_seconds:.2f} s",
            )
        )
        fk_seconds = copy_reference(server.fresh("w2_copy_fk"), n, into_statuses=True)
        fk_rate = rows / fk_seconds
        details["copy_into_statuses_with_fks_seconds"] = fk_seconds
        res.add(
            Figure(
                "  context: plain COPY into statuses itself (with its 2 foreign keys)",
                fk_rate,
                "rows/s",
                f"{rows:,} rows in {fk_seconds:.2f} s",
                fk_rate / copy_rate,
                "x COPY",
            )
        )

        first = run_job("w2-first", url, standin, ids)
        details["first"] = _job_details(first)
        write_s = float(first.summary.get("write_seconds") or math.nan)
        rate = rows / write_s
        res.details["w2_write_throughput"] = rate
        res.add(
            Figure(
                "W2 first sync write throughput (rows / write_seconds)",
                rate,
                "rows/s",
                f">= {COPY_FRACTION}x COPY",
                rate / copy_rate,
                "x COPY",
                _synced_all(first, n) and rate >= COPY_FRACTION * copy_rate,
            )
        )
        res.add(
            Figure(
                "  same, against the COPY into statuses with its foreign keys",
                rate,
                "rows/s",
                "-",
                rate / fk_rate,
                "x that COPY",
            )
        )
        res.add(
            Figure(
                "W2 first sync, whole process",
                rows / first.process.wall,
                "rows/s",
                f"{first.process.wall:.2f} s for {rows:,} rows",
                rows / first.process.wall / copy_rate,
                "x COPY",
            )
        )

        # Re-sync with nothing changed.
        wait_backends_gone(conn)
        before, lsn0 = table_stats(conn), wal_lsn(conn)
        same = run_job("w2-resync-unchanged", url, standin, ids)
        wait_backends_gone(conn)
        after, lsn1 = table_stats(conn), wal_lsn(conn)
        delta = stats_delta(before, after)
        wal = wal_bytes(conn, lsn0, lsn1)
        split = wal_split(conn, lsn0, lsn1) if walinspect else {}
        details["resync_unchanged"] = {
            **_job_details(same),
            "stats_delta": delta,
            "wal": wal,
            "wal_split": split,
            "wal_records": wal_records(conn, lsn0, lsn1) if walinspect else [],
        }
        # The LSN difference counts every database on the server; with pg_walinspect the
        # records of other databases (other people's tests, say) can be left out.
        others = split.get(OTHER_DATABASES, {}).get("bytes", 0)
        own = wal - others
        st = delta.get("statuses", {})
        res.add(
            Figure(
                "W2 re-sync unchanged: statuses rows rewritten (n_tup_upd)",
                st.get("n_tup_upd"),
                "",
                "= 0",
                None,
                "",
                _synced_all(same, n)
                and st.get("n_tup_upd") == 0
                and st.get("n_tup_ins") == 0
                and st.get("n_tup_del") == 0,
            )
        )
        res.add(
            Figure(
                "W2 re-sync unchanged: statuses dead tuples added",
                st.get("n_dead_tup"),
                "",
                "= 0",
                None,
                "",
                st.get("n_dead_tup") == 0,
            )
        )
        what = "this database's records" if split else "pg_current_wal_lsn() difference"
        res.add(
            Figure(
                f"W2 re-sync unchanged: WAL ({what})",
                own / MB,
                "MB",
                f"< {WAL_LIMIT / MB:.0f} MB",
                own / WAL_LIMIT,
                "x limit",
                own < WAL_LIMIT,
            )
        )
        if split:
            res.add(Figure("  pg_current_wal_lsn() difference, whole server", wal / MB, "MB"))
            images = sum(e["fpi"] for k, e in split.items() if k != OTHER_DATABASES)
            res.add(
                Figure(
                    "  this database's WAL without full-page images (checkpoint timing)",
                    (own - images) / MB,
                    "MB",
                    f"page images {images / MB:.2f} MB",
                )
            )
        for table, entry in split.items():
            res.add(
                Figure(
                    f"  WAL of which: {table}",
                    entry["bytes"] / MB,
                    "MB",
                    f"{entry['records']:,} records, {entry['fpi'] / MB:.2f} MB page images",
                )
            )
        for table in ("campaigns", "sync_run_batches", "sync_runs"):
            d = delta.get(table, {})
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
                same.process.wall,
                "s",
                f"writing {same.summary.get('write_seconds')} s",
            )
        )

        # Re-sync with 10% of the names changed.
        standin.serve(n, latency=0.0, renamed=True)
        changed = rows // RENAME_EVERY
        wait_backends_gone(conn)
        before, lsn0 = table_stats(conn), wal_lsn(conn)
        ten = run_job("w2-resync-10pct", url, standin, ids)
        wait_backends_gone(conn)
        after, lsn1 = table_stats(conn), wal_lsn(conn)
        delta = stats_delta(before, after)
        st = delta.get("statuses", {})
        renamed_row = conn.execute(
            "SELECT count(*) FILTER (WHERE name LIKE %s), count(*) FROM statuses",
            (f"%{RENAMED_SUFFIX}",),
        ).fetchone()
        wal = wal_bytes(conn, lsn0, lsn1)
        split = wal_split(conn, lsn0, lsn1) if walinspect else {}
        own = wal - split.get(OTHER_DATABASES, {}).get("bytes", 0)
        details["resync_10pct"] = {
            **_job_details(ten),
            "stats_delta": delta,
            "wal": wal,
            "wal_split": split,
            "stored_renamed_and_total": list(renamed_row or ()),
        }
        stored_ok = renamed_row is not None and tuple(renamed_row) == (changed, rows)
        res.add(
            Figure(
                "W2 re-sync 10% names changed: statuses rows rewritten",
                st.get("n_tup_upd"),
                "",
                f"= {changed:,}",
                None,
                "",
                _synced_all(ten, n)
                and stored_ok
                and st.get("n_tup_upd") == changed
                and st.get("n_tup_ins") == 0
                and st.get("n_tup_del") == 0,
            )
        )
        res.add(
            Figure(
                f"W2 re-sync 10% changed: WAL ({what})", own / MB, "MB", f"{changed:,} rows updated"
            )
        )
        res.add(
            Figure(
                "W2 re-sync 10% changed, whole process",
                ten.process.wall,
                "s",
                f"writing {ten.summary.get('write_seconds')} s",
            )
        )
    res.add(Figure("W2 job peak RSS (first sync)", first.process.rss_mb, "MB"))
    res.details["w2"] = details


def workload_w3(
    args: argparse.Namespace, server: Server, standin: StandInProcess, res: Results
) -> None:
    say(
        f"W3: {W3_CAMPAIGNS} campaigns x {STATUSES} statuses "
        f"({W3_CAMPAIGNS * STATUSES:,} rows), no latency"
    )
    standin.serve(W3_CAMPAIGNS, latency=0.0)
    details: dict[str, Any] = {}
    floor = run_process("python-floor", python_cmd("-m", "etl", "--version"), job_env_base())
    details["interpreter_and_imports_rss_mb"] = floor.rss_mb
    runs: dict[int, JobRun] = {}
    for n in (W3_SMALL, W3_CAMPAIGNS):
        url = server.fresh(f"w3_{n}")
        runs[n] = run_job(f"w3-{n}", url, standin, campaign_ids(n))
        details[str(n)] = _job_details(runs[n])
    big, small = runs[W3_CAMPAIGNS], runs[W3_SMALL]
    res.add(
        Figure(
            f"W3 peak RSS, {W3_CAMPAIGNS:,} campaigns",
            big.process.rss_mb,
            "MB",
            f"< {RSS_LIMIT_MB:.0f} MB",
            big.process.rss_mb / RSS_LIMIT_MB,
            "x limit",
            _synced_all(big, W3_CAMPAIGNS) and big.process.rss_mb < RSS_LIMIT_MB,
        )
    )
    res.add(Figure(f"W3 peak RSS, {W3_SMALL:,} campaigns", small.process.rss_mb, "MB"))
    growth = big.process.rss_mb / small.process.rss_mb
    res.add(
        Figure(
            f"W3 RSS growth, {W3_CAMPAIGNS // W3_SMALL}x the rows",
            growth,
            "x",
            f"<= {RSS_FLAT:.2f}x (flat)",
            growth,
            "x",
            _synced_all(small, W3_SMALL) and growth <= RSS_FLAT,
        )
    )
    res.add(Figure("  python + etl imports alone (RSS floor)", floor.rss_mb, "MB"))
    res.add(
        Figure(
            f"W3 first sync, {W3_CAMPAIGNS:,} campaigns, whole process",
            big.process.wall,
            "s",
            f"{W3_CAMPAIGNS * STATUSES / big.process.wall:,.0f} rows/s",
        )
    )
    res.details["w3"] = details


def workload_w4(
    args: argparse.Namespace, server: Server, standin: StandInProcess, res: Results
) -> None:
    rows = W4_CAMPAIGNS * W4_STATUSES
    say(
        f"W4: {W4_CAMPAIGNS} campaigns x {W4_STATUSES:,} statuses ({rows:,} rows; answers "
        f"just under THULIUM_MAX_BODY_BYTES={W4_MAX_BODY:,}), concurrency {DEFAULT_CONCURRENCY}"
    )
    standin.serve(W4_CAMPAIGNS, latency=0.0, statuses=W4_STATUSES)
    url = server.fresh("w4")
    job = run_job(
        "w4", url, standin, campaign_ids(W4_CAMPAIGNS), THULIUM_MAX_BODY_BYTES=str(W4_MAX_BODY)
    )
    res.details["w4"] = _job_details(job)
    synced = _synced_all(job, W4_CAMPAIGNS)
    res.add(
        Figure(
            "W4 peak RSS, 8 answers of ~4.9 MB in flight",
            job.process.rss_mb,
            "MB",
            f"< pod limit {POD_MEMORY_LIMIT_MB:.0f} MB",
            job.process.rss_mb / POD_MEMORY_LIMIT_MB,
            "x limit",
            synced and job.process.rss_mb < POD_MEMORY_LIMIT_MB,
        )
    )
    write = float(job.summary.get("write_seconds") or 0.0)
    throughput = rows / write if write else None
    small = res.details.get("w2_write_throughput")
    res.add(
        Figure(
            "W4 first sync write throughput (rows / write_seconds)",
            throughput,
            "rows/s",
            f">= {BIG_ANSWER_THROUGHPUT}x W2's" if small else "(W2 not run)",
            throughput / small if throughput and small else None,
            "x W2",
            (synced and throughput is not None and throughput >= BIG_ANSWER_THROUGHPUT * small)
            if small
            else None,
        )
    )
    res.add(Figure("W4 first sync, whole process", job.process.wall, "s"))


_SQL_TIMING_WRAPPER = """
import atexit, collections, json, os, runpy, sys, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
_totals = collections.defaultdict(lambda: [0, 0.0])
@event.listens_for(Engine, "before_cursor_execute")
def _before(conn, cursor, statement, parameters, context, executemany):
    conn.info.setdefault("bench_started", []).append(time.perf_counter())
@event.listens_for(Engine, "after_cursor_execute")
def _after(conn, cursor, statement, parameters, context, executemany):
    started = conn.info["bench_started"].pop()
    entry = _totals[" ".join(statement.split())[:90]]
    entry[0] += 1
    entry[1] += time.perf_counter() - started
def _dump():
    with open(os.environ["BENCH_SQL_TIMINGS_FILE"], "w") as out:
        json.dump(sorted(([s, n, t] for s, (n, t) in _totals.items()), key=lambda e: -e[2]), out)
atexit.register(_dump)
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def profile_w2(server: Server, standin: StandInProcess, res: Results) -> None:
    """An extra, untimed W2 first sync and unchanged re-sync with every SQL statement timed
    (SQLAlchemy cursor events; the COPY into the staging table and commits are not
    statements, so they are not in the list): where the write time goes."""
    say("profile: W2 first sync and re-sync with SQL statement timings (not timed)")
    standin.serve(W2_CAMPAIGNS, latency=0.0)
    url = server.fresh("w2_profile")
    profile: dict[str, Any] = {}
    for run in ("first", "resync"):
        timings = LOG_DIR / f"w2-profile-{run}.sql.json"
        env = {
            **job_env_base(),
            "DATABASE_URL": conninfo(url),
            "THULIUM_BASE_URL": standin.url,
            "THULIUM_USER": USER,
            "THULIUM_PASSWORD": PASSWORD,
            "THULIUM_LOG_FORMAT": "json",
            "THULIUM_CAMPAIGNS": ",".join(campaign_ids(W2_CAMPAIGNS)),
            "BENCH_SQL_TIMINGS_FILE": str(timings),
        }
        proc = run_process(
            f"w2-profile-{run}",
            [sys.executable, "-c", _SQL_TIMING_WRAPPER, "-m", "etl", "sync"],
            env,
        )
        rows = json.loads(timings.read_text()) if timings.exists() else []
        profile[run] = {"wall": proc.wall, "statements": rows}
        print(
            f"\nW2 {run} sync with SQL timings: {proc.wall:.2f} s wall; top statements:",
            file=sys.stderr,
        )
        for statement, calls, seconds in rows[:10]:
            print(f"  {seconds:7.3f} s {calls:6d} x  {statement}", file=sys.stderr)
    res.details["w2_profile"] = profile


# -- main ---------------------------------------------------------------------------------


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev or None


def machine(server: Server) -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    osname = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    try:
        from importlib.metadata import version

        dlt_version = version("dlt")
    except Exception:
        dlt_version = None
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": osname,
        "python": platform.python_version(),
        "postgres": server.version(),
        "dlt": dlt_version,
        "load_average_at_start": os.getloadavg(),
        "git": _git_revision(),
    }


@contextlib.contextmanager
def postgres(args: argparse.Namespace) -> Iterator[URL]:
    raw = (
        args.database_url
        or os.environ.get("ETL_BENCH_DATABASE_URL")
        or os.environ.get("ETL_TEST_DATABASE_URL")
    )
    if raw:
        yield make_url(raw).set(drivername="postgresql+psycopg")
    else:
        say("no database URL given: starting the embedded Postgres in .bench/pg")
        with embedded_postgres(BENCH_DIR / "pg") as url:
            yield url


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="thulium-etl benchmarks (see benchmarks/README.md)")
    p.add_argument(
        "--database-url",
        help="a Postgres server to create databases on "
        "(default: ETL_BENCH_DATABASE_URL, ETL_TEST_DATABASE_URL, else embedded)",
    )
    p.add_argument(
        "--quick", action="store_true", help="skip the sequential baseline and dlt (a smoke run)"
    )
    p.add_argument("--skip-dlt", action="store_true", help="do not run the dlt peer")
    p.add_argument(
        "--dlt-workers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[16],
        help="dlt extract workers to measure, e.g. 5,16 (default 16)",
    )
    p.add_argument(
        "--only",
        type=lambda s: s.lower().split(","),
        default=["w1", "wc", "w2", "w3", "w4"],
        help="workloads to run, e.g. w1,wc,w3 (default all)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="W1 first syncs (ours and dlt) per setting; the median counts (default 3)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also run an untimed W2 first sync and re-sync with every SQL statement "
        "timed, and print where the write time goes",
    )
    p.add_argument("--keep-databases", action="store_true", help="do not drop thulium_bench_*")
    p.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    BENCH_DIR.mkdir(exist_ok=True)
    res = Results()
    with postgres(args) as admin:
        server = Server(admin, keep=args.keep_databases)
        res.details["machine"] = machine(server)
        say(f"machine: {res.details['machine']}")
        standin = StandInProcess()
        say(f"stand-in serving {standin.url} (own process)")
        try:
            if "w1" in args.only:
                workload_w1(args, server, standin, res)
            if "wc" in args.only:
                workload_check(args, server, standin, res)
            if "w2" in args.only:
                workload_w2(args, server, standin, res)
            if "w3" in args.only:
                workload_w3(args, server, standin, res)
            if "w4" in args.only:
                workload_w4(args, server, standin, res)
            if args.profile:
                profile_w2(server, standin, res)
        finally:
            standin.stop()
            server.drop_all()
    res.details["machine"]["load_average_at_end"] = os.getloadavg()
    res.details["seconds"] = time.perf_counter() - _T0
    out = BENCH_DIR / "results.json"
    out.write_text(
        json.dumps(
            {"figures": [asdict(f) for f in res.figures], "details": res.details},
            indent=2,
            default=str,
        )
    )
    m = res.details["machine"]
    print(
        f"\nthulium-etl benchmarks — {m['cpus']} CPUs ({m['cpu']}), {m['memory_gb']} GiB, "
        f"{m['os']}, Python {m['python']}, {m['postgres'].split(' on ')[0]}"
        f"{', dlt ' + m['dlt'] if m['dlt'] else ''}; {res.details['seconds']:.0f} s"
    )
    print(res.table())
    missed = [f.name for f in res.figures if f.ok is False]
    print(
        f"\n{len(missed)} target(s) missed"
        + (": " + "; ".join(missed) if missed else "")
        + f". Results: {out.relative_to(ROOT)}, logs: {LOG_DIR.relative_to(ROOT)}/"
    )
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
