"""``--profile``: an extra, untimed W2 first sync and unchanged re-sync with every SQL
statement timed (:mod:`benchmarks.sql_timings`): where the write time goes."""

from __future__ import annotations

import json
import sys
from typing import Any

from benchmarks import w2
from benchmarks.common import LOG_DIR, campaign_ids, say
from benchmarks.postgres import Server
from benchmarks.processes import SQL_TIMINGS, job_env, python_cmd, run_process
from benchmarks.results import Results
from benchmarks.standin_process import StandInProcess


def run(server: Server, standin: StandInProcess, res: Results) -> None:
    say("profile: W2 first sync and re-sync with SQL statement timings (not timed)")
    standin.serve(w2.CAMPAIGNS, latency=0.0)
    url = server.fresh("w2_profile")
    profile: dict[str, Any] = {}
    for kind in ("first", "resync"):
        timings = LOG_DIR / f"w2-profile-{kind}.sql.json"
        env = {
            **job_env(url, standin, campaign_ids(w2.CAMPAIGNS)),
            "BENCH_SQL_TIMINGS_FILE": str(timings),
        }
        cmd = python_cmd("-m", "etl", "sync", wrapper=SQL_TIMINGS)
        proc = run_process(f"w2-profile-{kind}", cmd, env)
        rows = json.loads(timings.read_text()) if timings.exists() else []
        profile[kind] = {"wall": proc.wall, "statements": rows}
        print(
            f"\nW2 {kind} sync with SQL timings: {proc.wall:.2f} s wall; top statements:",
            file=sys.stderr,
        )
        for statement, calls, seconds in rows[:10]:
            print(f"  {seconds:7.3f} s {calls:6d} x  {statement}", file=sys.stderr)
    res.details["w2_profile"] = profile
