"""WC: ``thulium-etl check`` of 400 campaigns at 300 ms per answer, default concurrency.

Against the latency bound ceil(400 / 8) x 300 ms plus start-up: a ``check --quick`` of one
campaign at no latency, measured in the same run.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from benchmarks import targets as T
from benchmarks.common import DEFAULT_CONCURRENCY, bound, campaign_ids, say
from benchmarks.postgres import Server
from benchmarks.processes import run_check
from benchmarks.results import Figure, Results
from benchmarks.standin_process import StandInProcess

CAMPAIGNS, LATENCY = 400, 0.3


def run(args: argparse.Namespace, server: Server, standin: StandInProcess, res: Results) -> None:
    n, c = CAMPAIGNS, DEFAULT_CONCURRENCY
    say(f"WC: check of {n} campaigns, {LATENCY * 1000:.0f} ms per answer, concurrency {c}")
    url = server.fresh("check")
    ids = campaign_ids(n)
    standin.serve(n, latency=0.0)
    startup, _ = run_check("check-quick", url, standin, ids, "--quick")
    standin.serve(n, latency=LATENCY)
    full, passed = run_check(f"check-{n}", url, standin, ids)
    limit = bound(n, c, latency=LATENCY)
    # The target is a factor of the bound plus the start-up: compare the wall time less the
    # start-up with the bound.
    res.add(
        Figure.held_to(
            T.WC_BOUND,
            f"WC check, {n} campaigns at {LATENCY * 1000:.0f} ms, concurrency {c} (whole process)",
            full.wall,
            "s",
            compared=(full.wall - startup.wall) / limit,
            valid=full.exit_code == 0 and passed == n,
            note=f"(bound {limit:.2f} s)",
            ratio=full.wall / limit,
            ratio_of="x bound",
        )
    )
    res.add(Figure("  start-up: check --quick at no latency (one campaign)", startup.wall, "s"))
    res.details["check"] = {"quick": asdict(startup), "full": asdict(full), "passed": passed}
