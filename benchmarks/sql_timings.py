"""Runs ``python -m etl ...`` with every SQL statement timed; writes the totals at exit.

Usage: ``python benchmarks/sql_timings.py -m etl sync`` with ``BENCH_SQL_TIMINGS_FILE`` set:
a JSON list of ``[statement (first 90 characters), calls, seconds]``, the slowest first.
SQLAlchemy's cursor events time each statement; a COPY and a commit are not statements, so
they are not in the list. The program then runs under :mod:`peak_rss <benchmarks.peak_rss>`,
as every job of the harness does.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import runpy
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

_totals: collections.defaultdict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])


@event.listens_for(Engine, "before_cursor_execute")
def _before(
    conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
) -> None:
    conn.info.setdefault("bench_started", []).append(time.perf_counter())


@event.listens_for(Engine, "after_cursor_execute")
def _after(
    conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
) -> None:
    started = conn.info["bench_started"].pop()
    entry = _totals[" ".join(statement.split())[:90]]
    entry[0] += 1
    entry[1] += time.perf_counter() - started


def _dump() -> None:
    rows = sorted(((s, int(n), t) for s, (n, t) in _totals.items()), key=lambda e: -e[2])
    with open(os.environ["BENCH_SQL_TIMINGS_FILE"], "w") as out:
        json.dump(rows, out)


if __name__ == "__main__":
    atexit.register(_dump)
    runpy.run_path(str(Path(__file__).with_name("peak_rss.py")), run_name="__main__")
