"""W4: 16 campaigns of 40,000 statuses, no latency, concurrency 8.

Answers of ~4.9 MB, just under the 5 MB ``THULIUM_MAX_BODY_BYTES`` the Kubernetes ConfigMap
sets, so every worker can hold one that large at once: the job's peak RSS, and its write
throughput against W2's in the same run (a big campaign must not write slower per row).
"""

from __future__ import annotations

import argparse

from benchmarks import targets as T
from benchmarks.common import DEFAULT_CONCURRENCY, campaign_ids, say
from benchmarks.postgres import Server
from benchmarks.processes import run_job
from benchmarks.results import Figure, Results
from benchmarks.standin_process import StandInProcess

CAMPAIGNS, STATUSES, MAX_BODY = 16, 40_000, 5_000_000
ROWS = CAMPAIGNS * STATUSES


def run(args: argparse.Namespace, server: Server, standin: StandInProcess, res: Results) -> None:
    say(
        f"W4: {CAMPAIGNS} campaigns x {STATUSES:,} statuses ({ROWS:,} rows; answers just "
        f"under THULIUM_MAX_BODY_BYTES={MAX_BODY:,}), concurrency {DEFAULT_CONCURRENCY}"
    )
    standin.serve(CAMPAIGNS, latency=0.0, statuses=STATUSES)
    job = run_job(
        "w4",
        server.fresh("w4"),
        standin,
        campaign_ids(CAMPAIGNS),
        THULIUM_MAX_BODY_BYTES=str(MAX_BODY),
    )
    res.details["w4"] = job.details()
    synced = job.synced_all(CAMPAIGNS)
    rss = job.process.rss_mb
    res.add(
        Figure.held_to(
            T.W4_RSS,
            "W4 peak RSS, 8 answers of ~4.9 MB in flight",
            rss,
            "MB",
            compared=rss,
            valid=synced,
            ratio_of="x limit",
        )
    )
    write = job.write_seconds
    throughput = ROWS / write if write else None
    small = res.details.get("w2_write_throughput")
    name = "W4 first sync write throughput (rows / write_seconds)"
    if small and throughput:
        res.add(
            Figure.held_to(
                T.W4_THROUGHPUT,
                name,
                throughput,
                "rows/s",
                compared=throughput / small,
                valid=synced,
                ratio=throughput / small,
                ratio_of="x W2",
            )
        )
    else:
        res.add(Figure(name, throughput, "rows/s", "(W2 not run)"))
    res.add(Figure("W4 first sync, whole process", job.process.wall, "s"))
