"""``python -m benchmarks`` (``make bench``): run the workloads, print every figure against its
target, write ``.bench/results.json``. Options: ``--help``, and ``benchmarks/README.md``."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks import w1, w2, w2_profile, w3, w4, wc
from benchmarks.common import BENCH_DIR, LOG_DIR, RESULTS, ROOT, elapsed, say
from benchmarks.postgres import Server, postgres
from benchmarks.results import Results, table
from benchmarks.standin_process import StandInProcess

Workload = Callable[[argparse.Namespace, Server, StandInProcess, Results], None]
WORKLOADS: dict[str, Workload] = {
    "w1": w1.run,
    "wc": wc.run,
    "w2": w2.run,
    "w3": w3.run,
    "w4": w4.run,
}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description="thulium-etl benchmarks (see benchmarks/README.md)"
    )
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
        default=list(WORKLOADS),
        help=f"workloads to run, e.g. w1,wc,w3 (default all: {','.join(WORKLOADS)})",
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
    args = p.parse_args(argv)
    unknown = set(args.only) - set(WORKLOADS)
    if unknown:
        p.error(
            f"--only: no workload {', '.join(sorted(unknown))} (there are {', '.join(WORKLOADS)})"
        )
    return args


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


def _first_line(path: str, prefix: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line[len(prefix) :].strip().strip('"')
    return None


def machine(server: Server) -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        dlt_version: str | None = version("dlt")
    except PackageNotFoundError:
        dlt_version = None
    cpu = _first_line("/proc/cpuinfo", "model name")
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu.lstrip(": ") if cpu else "?",
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": _first_line("/etc/os-release", "PRETTY_NAME=") or platform.platform(),
        "python": platform.python_version(),
        "postgres": server.version(),
        "dlt": dlt_version,
        "load_average_at_start": os.getloadavg(),
        "git": _git_revision(),
    }


def heading(m: dict[str, Any], seconds: float) -> str:
    """One line: the machine and versions of a run, and how long it took."""
    return (
        f"thulium-etl benchmarks — {m['cpus']} CPUs ({m['cpu']}), {m['memory_gb']} GiB, "
        f"{m['os']}, Python {m['python']}, {m['postgres'].split(' on ')[0]}"
        f"{', dlt ' + m['dlt'] if m['dlt'] else ''}; {seconds:.0f} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    BENCH_DIR.mkdir(exist_ok=True)
    res = Results()
    with postgres(args.database_url) as admin:
        server = Server(admin, keep=args.keep_databases)
        res.details["machine"] = machine(server)
        say(f"machine: {res.details['machine']}")
        standin = StandInProcess()
        say(f"stand-in serving {standin.url} (own process)")
        try:
            for name, workload in WORKLOADS.items():
                if name in args.only:
                    workload(args, server, standin, res)
            if args.profile:
                w2_profile.run(server, standin, res)
        finally:
            standin.stop()
            server.drop_all()
    res.details["machine"]["load_average_at_end"] = os.getloadavg()
    res.details["seconds"] = elapsed()
    res.write(RESULTS)
    print(f"\n{heading(res.details['machine'], res.details['seconds'])}")
    print(table(res.figures))
    missed = res.missed()
    print(
        f"\n{len(missed)} target(s) missed"
        + (": " + "; ".join(missed) if missed else "")
        + f". Results: {RESULTS.relative_to(ROOT)}, logs: {LOG_DIR.relative_to(ROOT)}/"
    )
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
