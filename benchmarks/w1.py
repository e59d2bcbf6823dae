"""W1: 1,000 campaigns of 50 statuses, 50 ms per answer.

The stand-in alone at 16 and 8 keep-alive clients; first syncs at concurrency 8 and 16
(median of ``--repeat``, each into a fresh database) against the latency bound and against
the stand-in alone; a re-sync with nothing changed; the sequential baseline (concurrency 1);
and the dlt peer (``benchmarks/dlt_pipeline.py``) at ``--dlt-workers``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from dataclasses import asdict
from typing import Any

from benchmarks import targets as T
from benchmarks.common import BENCH_DIR, DEFAULT_CONCURRENCY, STATUSES, bound, campaign_ids, say
from benchmarks.postgres import Server, connect
from benchmarks.processes import JobRun, ProcessRun, run_dlt, run_job
from benchmarks.results import Figure, Results
from benchmarks.standin_process import StandInProcess, standin_alone
from benchmarks.stats import stats_delta, table_stats, wait_backends_gone

CAMPAIGNS = 1_000
LATENCY = 0.05  # seconds per answer


def _bound(concurrency: int) -> float:
    return bound(CAMPAIGNS, concurrency, latency=LATENCY)


def run(args: argparse.Namespace, server: Server, standin: StandInProcess, res: Results) -> None:
    say(f"W1: {CAMPAIGNS} campaigns x {STATUSES} statuses, {LATENCY * 1000:.0f} ms per answer")
    standin.serve(CAMPAIGNS, latency=LATENCY)
    details: dict[str, Any] = {}
    alone = _standin_alone(standin, res, details)
    ours = {c: _first_syncs(args, server, standin, c, res, details) for c in (8, 16)}
    _in_a_schema(args, server, standin, ours[16], res, details)
    ratio = ours[16] / alone[16]
    res.add(
        Figure.held_to(
            T.W1_VS_STANDIN,
            "W1 first sync at 16 vs the stand-in alone at 16 clients",
            ratio,
            "x",
            compared=ratio,
            note=f"({alone[16]:.2f} s alone)",
        )
    )
    if not args.quick:
        _sequential(server, standin, ours, res, details)
    if not args.quick and not args.skip_dlt:
        for workers in args.dlt_workers:
            _dlt(args, server, standin, workers, ours, res, details)
    res.details["w1"] = details


def _standin_alone(
    standin: StandInProcess, res: Results, details: dict[str, Any]
) -> dict[int, float]:
    walls: dict[int, float] = {}
    for c in (16, DEFAULT_CONCURRENCY):
        walls[c] = wall = standin_alone(standin.url, campaign_ids(CAMPAIGNS), c)
        details[f"standin_alone_c{c}"] = wall
        res.add(
            Figure.held_to(
                T.STANDIN_BOUND,
                f"W1 stand-in alone, {c} keep-alive clients",
                wall,
                "s",
                compared=wall / _bound(c),
                note=f"(bound {_bound(c):.2f} s)",
                ratio=wall / _bound(c),
                ratio_of="x bound",
            )
        )
    return walls


def _first_syncs(
    args: argparse.Namespace,
    server: Server,
    standin: StandInProcess,
    c: int,
    res: Results,
    details: dict[str, Any],
) -> float:
    """First syncs at concurrency ``c``: the median wall time."""
    ids, reps = campaign_ids(CAMPAIGNS), args.repeat
    jobs: list[JobRun] = []
    for r in range(1, reps + 1):
        url = server.fresh(f"w1_c{c}")
        jobs.append(run_job(f"w1-c{c}-{r}", url, standin, ids, concurrency=c))
    details[f"c{c}"] = [job.details() for job in jobs]
    walls = [job.process.wall for job in jobs]
    median = statistics.median(walls)
    res.add(
        Figure.held_to(
            T.W1_BOUND,
            f"W1 first sync, concurrency {c} (whole process"
            + (f", median of {reps})" if reps > 1 else ")"),
            median,
            "s",
            compared=median / _bound(c),
            valid=all(job.synced_all(CAMPAIGNS) for job in jobs),
            note=f"(bound {_bound(c):.2f} s)",
            ratio=median / _bound(c),
            ratio_of="x bound",
        )
    )
    if reps > 1:
        res.add(
            Figure(
                f"  runs at concurrency {c}: min / max", min(walls), "s", f"max {max(walls):.2f} s"
            )
        )
    if c == 16:
        _where_the_time_goes(jobs, res)
        resync = run_job("w1-c16-resync", url, standin, ids, concurrency=16)
        details["c16_resync"] = resync.details()
        res.add(_against_bound("W1 re-sync, nothing changed, concurrency 16", resync, 16))
        res.add(Figure("W1 job peak RSS, concurrency 16", jobs[-1].process.rss_mb, "MB"))
    return median


def _in_a_schema(
    args: argparse.Namespace,
    server: Server,
    standin: StandInProcess,
    public: float,
    res: Results,
    details: dict[str, Any],
) -> None:
    """First syncs at 16 into a schema of their own, against the same into public."""
    schema, walls, jobs = "thulium_acme", [], []
    for r in range(1, args.repeat + 1):
        url = server.fresh("w1_schema", schema=schema)
        job = run_job(
            f"w1-schema-{r}",
            url,
            standin,
            campaign_ids(CAMPAIGNS),
            concurrency=16,
            THULIUM_DB_SCHEMA=schema,
        )
        jobs.append(job)
        walls.append(job.process.wall)
    details["c16_schema"] = [job.details() for job in jobs]
    median = statistics.median(walls)
    res.add(
        Figure.held_to(
            T.W1_SCHEMA,
            f"W1 first sync at 16 into schema {schema} vs public",
            median / public,
            "x",
            compared=median / public,
            valid=all(job.synced_all(CAMPAIGNS) for job in jobs),
            note=f"({median:.2f} s vs {public:.2f} s)",
        )
    )


def _against_bound(name: str, job: JobRun, concurrency: int) -> Figure:
    """A job's wall time, for context, with its ratio to the latency bound."""
    wall = job.process.wall
    return Figure(name, wall, "s", ratio=wall / _bound(concurrency), ratio_of="x bound")


def _where_the_time_goes(jobs: list[JobRun], res: Results) -> None:
    startups = [j.startup for j in jobs if j.startup is not None]
    shutdowns = [j.shutdown for j in jobs if j.shutdown is not None]
    if startups and shutdowns:
        res.add(
            Figure(
                "  of which process start -> run started (imports, checks, lock)",
                statistics.median(startups),
                "s",
            )
        )
        res.add(
            Figure("  of which final log line -> process gone", statistics.median(shutdowns), "s")
        )
    writes = [j.write_seconds or 0.0 for j in jobs]
    res.add(Figure("  time in write transactions (write_seconds)", statistics.median(writes), "s"))


def _sequential(
    server: Server,
    standin: StandInProcess,
    ours: dict[int, float],
    res: Results,
    details: dict[str, Any],
) -> None:
    seq = run_job("w1-c1", server.fresh("w1_c1"), standin, campaign_ids(CAMPAIGNS), concurrency=1)
    details["c1"] = seq.details()
    res.add(_against_bound("W1 sequential baseline, concurrency 1", seq, 1))
    wall = seq.process.wall
    speedup = wall / ours[16]
    res.add(
        Figure.held_to(
            T.W1_SPEEDUP,
            "W1 speed-up, concurrency 16 vs 1",
            speedup,
            "x",
            compared=speedup,
            valid=seq.synced_all(CAMPAIGNS),
            ratio_of=" of target",
        )
    )
    res.add(
        Figure(
            f"W1 speed-up, concurrency {DEFAULT_CONCURRENCY} vs 1",
            wall / ours[DEFAULT_CONCURRENCY],
            "x",
        )
    )


def _dlt(
    args: argparse.Namespace,
    server: Server,
    standin: StandInProcess,
    workers: int,
    ours: dict[int, float],
    res: Results,
    details: dict[str, Any],
) -> None:
    """dlt's first syncs (median of ``--repeat``) and a re-sync at ``workers``."""
    reps, limit = args.repeat, _bound(workers)
    pipelines = BENCH_DIR / "dlt" / f"pipelines-{workers}"
    firsts: list[ProcessRun] = []
    loaded = True
    for r in range(1, reps + 1):
        dlt_url = server.fresh(f"w1_dlt{workers}", migrate=False)
        shutil.rmtree(pipelines, ignore_errors=True)
        first, info = run_dlt(
            f"w1-dlt-w{workers}-{r}", dlt_url, standin, CAMPAIGNS, workers, pipelines
        )
        firsts.append(first)
        with connect(dlt_url) as conn:
            row = conn.execute("SELECT count(*) FROM thulium_dlt.statuses").fetchone()
        loaded = loaded and first.exit_code == 0 and bool(row and row[0] == CAMPAIGNS * STATUSES)
        details.setdefault(f"dlt_w{workers}", []).append(
            {**asdict(first), "info": info, "rows": row[0] if row else None}
        )
    with connect(dlt_url) as conn:  # re-sync on the last repetition's database
        wait_backends_gone(conn)
        before = table_stats(conn, "thulium_dlt")
        again, info2 = run_dlt(
            f"w1-dlt-w{workers}-resync", dlt_url, standin, CAMPAIGNS, workers, pipelines
        )
        wait_backends_gone(conn)
        delta = stats_delta(before, table_stats(conn, "thulium_dlt")).get("statuses", {})
    details[f"dlt_w{workers}_resync"] = {**asdict(again), "info": info2, "statuses_delta": delta}
    walls = [p.wall for p in firsts]
    dlt_wall = statistics.median(walls)
    res.add(
        Figure(
            f"W1 dlt first sync, {workers} extract workers"
            + (f", median of {reps}" if reps > 1 else ""),
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
            Figure.held_to(
                T.W1_VS_DLT,
                "W1 ours vs dlt, both at 16 (dlt time / ours)",
                speedup,
                "x",
                compared=speedup,
                valid=loaded,
                ratio_of=" of target",
            )
        )
