"""W3: 10,000 campaigns of 50 statuses (500,000 rows), no latency: the job's peak RSS, and at
2,500 campaigns to show it stays flat; the RSS of the interpreter and imports alone as floor."""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks import targets as T
from benchmarks.common import STATUSES, campaign_ids, job_env_base, say
from benchmarks.postgres import Server
from benchmarks.processes import JobRun, python_cmd, run_job, run_process
from benchmarks.results import Figure, Results
from benchmarks.standin_process import StandInProcess

CAMPAIGNS, SMALL = 10_000, 2_500


def run(args: argparse.Namespace, server: Server, standin: StandInProcess, res: Results) -> None:
    say(f"W3: {CAMPAIGNS} campaigns x {STATUSES} statuses ({CAMPAIGNS * STATUSES:,} rows)")
    standin.serve(CAMPAIGNS, latency=0.0)
    details: dict[str, Any] = {}
    floor = run_process("python-floor", python_cmd("-m", "etl", "--version"), job_env_base())
    details["interpreter_and_imports_rss_mb"] = floor.rss_mb
    runs: dict[int, JobRun] = {}
    for n in (SMALL, CAMPAIGNS):
        runs[n] = run_job(f"w3-{n}", server.fresh(f"w3_{n}"), standin, campaign_ids(n))
        details[str(n)] = runs[n].details()
    big, small = runs[CAMPAIGNS].process, runs[SMALL].process
    res.add(
        Figure.held_to(
            T.W3_RSS,
            f"W3 peak RSS, {CAMPAIGNS:,} campaigns",
            big.rss_mb,
            "MB",
            compared=big.rss_mb,
            valid=runs[CAMPAIGNS].synced_all(CAMPAIGNS),
            ratio_of="x limit",
        )
    )
    res.add(Figure(f"W3 peak RSS, {SMALL:,} campaigns", small.rss_mb, "MB"))
    growth = big.rss_mb / small.rss_mb
    res.add(
        Figure.held_to(
            T.W3_FLAT,
            f"W3 RSS growth, {CAMPAIGNS // SMALL}x the rows",
            growth,
            "x",
            compared=growth,
            valid=runs[SMALL].synced_all(SMALL),
            note="(flat)",
        )
    )
    res.add(Figure("  python + etl imports alone (RSS floor)", floor.rss_mb, "MB"))
    res.add(
        Figure(
            f"W3 first sync, {CAMPAIGNS:,} campaigns, whole process",
            big.wall,
            "s",
            f"{CAMPAIGNS * STATUSES / big.wall:,.0f} rows/s",
        )
    )
    res.details["w3"] = details
