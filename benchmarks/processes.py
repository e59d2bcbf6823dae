"""The job, ``check`` and dlt as processes of their own, timed as a whole, peak RSS included."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from benchmarks.common import BENCH_DIR, LOG_DIR, MB, PASSWORD, ROOT, USER, job_env_base, say
from benchmarks.postgres import conninfo
from benchmarks.standin_process import StandInProcess

_HERE = Path(__file__).resolve().parent
PEAK_RSS = _HERE / "peak_rss.py"
SQL_TIMINGS = _HERE / "sql_timings.py"


def python_cmd(kind: str, target: str, *args: str, wrapper: Path = PEAK_RSS) -> list[str]:
    """``python -m target args`` (kind ``-m``) or ``python target args`` (kind ``-p``), run
    under ``wrapper`` (:mod:`benchmarks.peak_rss`, which records the peak RSS)."""
    return [sys.executable, str(wrapper), kind, target, *args]


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

    def out(self) -> list[str]:
        """The lines the process wrote to stdout."""
        return (LOG_DIR / f"{self.tag}.out").read_text(errors="replace").splitlines()

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-lines:])


def run_process(
    tag: str, cmd: Sequence[str], env: dict[str, str], *, cwd: Path | None = None
) -> ProcessRun:
    """Run ``cmd`` to its end: stderr to ``.bench/logs/<tag>.log``, stdout to ``<tag>.out``."""
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
        # wait4, not proc.wait(): it reaps the child *and* returns its rusage.
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
    """A ``thulium-etl sync``: its process, its final log event and where its time went."""

    process: ProcessRun
    summary: dict[str, Any]
    startup: float | None  # process start -> "run N started" (imports, schema check, lock)
    shutdown: float | None  # final log line -> process gone
    requests: int

    def synced_all(self, n: int) -> bool:
        return self.process.exit_code == 0 and self.summary.get("campaigns_ok") == n

    @property
    def write_seconds(self) -> float | None:
        value = self.summary.get("write_seconds")
        return float(value) if value else None

    def details(self) -> dict[str, Any]:
        return {
            **asdict(self.process),
            "summary": self.summary,
            "startup_seconds": self.startup,
            "shutdown_seconds": self.shutdown,
            "requests": self.requests,
        }


def _log_time(event: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(event["time"])).timestamp()
    except (KeyError, ValueError):
        return None


def job_env(url: URL, standin: StandInProcess, ids: Sequence[str]) -> dict[str, str]:
    """The job's settings: this database, the stand-in, these campaigns, JSON logs."""
    return {
        **job_env_base(),
        "DATABASE_URL": conninfo(url),
        "THULIUM_BASE_URL": standin.url,
        "THULIUM_USER": USER,
        "THULIUM_PASSWORD": PASSWORD,
        "THULIUM_CAMPAIGNS": ",".join(ids),
        "THULIUM_LOG_FORMAT": "json",
    }


def run_job(
    tag: str,
    url: URL,
    standin: StandInProcess,
    ids: Sequence[str],
    concurrency: int | None = None,
    **extra_env: str,
) -> JobRun:
    """``python -m etl sync`` of ``ids`` into ``url``, timed from spawn to exit."""
    cmd = python_cmd("-m", "etl", "sync")
    if concurrency is not None:
        cmd += ["--concurrency", str(concurrency)]
    standin.requests_since_last()
    proc = run_process(tag, cmd, {**job_env(url, standin, ids), **extra_env})
    served = standin.requests_since_last()
    events: list[dict[str, Any]] = []
    for line in Path(proc.log).read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    summary: dict[str, Any] = next((e for e in reversed(events) if "write_seconds" in e), {})
    started = next((e for e in events if re.match(r"run \d+ started", str(e.get("message")))), None)
    t_started = _log_time(started) if started else None
    t_final = _log_time(summary) if summary else None
    job = JobRun(
        process=proc,
        summary=summary,
        startup=(t_started - proc.started_at) if t_started else None,
        shutdown=(proc.started_at + proc.wall - t_final) if t_final else None,
        requests=served,
    )
    say(
        f"  {tag}: {proc.wall:.2f}s, exit {proc.exit_code}, RSS {proc.rss_mb:.1f} MB, "
        f"CPU {proc.cpu_seconds:.2f}s, {summary.get('campaigns_ok')}/{len(ids)} campaigns, "
        f"rows +{summary.get('rows_inserted')} ~{summary.get('rows_updated')} "
        f"-{summary.get('rows_deleted')}, writing {summary.get('write_seconds')}s, "
        f"{served} requests"
    )
    if not job.synced_all(len(ids)):
        say(f"  {tag} did not sync every campaign; log tail:\n{proc.log_tail()}")
    return job


def run_check(
    tag: str, url: URL, standin: StandInProcess, ids: Sequence[str], *args: str
) -> tuple[ProcessRun, int]:
    """``thulium-etl check`` as a process of its own: its run, and its PASS lines."""
    proc = run_process(tag, python_cmd("-m", "etl", "check", *args), job_env(url, standin, ids))
    passed = sum(line.startswith("PASS  campaign ") for line in proc.out())
    say(f"  {tag}: {proc.wall:.2f}s, exit {proc.exit_code}, {passed} campaigns passed")
    return proc, passed


def run_dlt(
    tag: str, url: URL, standin: StandInProcess, campaigns: int, workers: int, pipelines_dir: Path
) -> tuple[ProcessRun, dict[str, Any]]:
    """``benchmarks/dlt_pipeline.py`` into ``url``: its run, and the JSON line it prints."""
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
    for line in proc.out():
        with contextlib.suppress(ValueError):
            info = json.loads(line)
    info["requests"] = served
    say(
        f"  {tag}: {proc.wall:.2f}s, exit {proc.exit_code}, RSS {proc.rss_mb:.1f} MB, "
        f"CPU {proc.cpu_seconds:.2f}s, steps {info.get('steps')}, rows {info.get('rows')}, "
        f"{served} requests"
    )
    if proc.exit_code != 0:
        say(f"  {tag} failed; log tail:\n{proc.log_tail()}")
    return proc, info
