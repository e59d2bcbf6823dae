"""What every part of the harness shares: where it writes, the stand-in's users and data, the
latency bound, the environment a child process starts from, and progress lines."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
LOG_DIR = BENCH_DIR / "logs"
RESULTS = BENCH_DIR / "results.json"

USER, PASSWORD = "bench", "bench-Pa55"
STATUSES = 50  # per campaign, in every workload but W4
DEFAULT_CONCURRENCY = 8  # the job's default; WC, W2, W3 and W4 run with it
MB = 1_000_000

_T0 = time.perf_counter()


def say(message: str) -> None:
    """A progress line on stderr, with the seconds since the harness started."""
    print(f"[bench {elapsed():6.1f}s] {message}", file=sys.stderr, flush=True)


def elapsed() -> float:
    return time.perf_counter() - _T0


def campaign_ids(n: int) -> list[str]:
    return [f"{i:05d}" for i in range(1, n + 1)]


def bound(campaigns: int, concurrency: int, *, latency: float) -> float:
    """The latency bound: ceil(campaigns / concurrency) rounds of one answer each."""
    return math.ceil(campaigns / concurrency) * latency


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
