"""The Thulium stand-in in a process of its own, and what it alone achieves.

The job, dlt and the harness's own client threads never share a GIL with the server.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

import requests

from benchmarks.common import PASSWORD, STATUSES, USER
from standin import StandIn, sample_statuses

RENAME_EVERY = 10  # a renamed answer renames every 10th status of each campaign (10% of rows)
RENAMED_SUFFIX = " (zmieniony)"


def campaign_statuses(
    i: int, *, renamed: bool = False, count: int = STATUSES
) -> list[dict[str, object]]:
    """Campaign ``i``'s answer: ``sample_statuses`` (as ``python -m standin`` serves)."""
    statuses = sample_statuses(f"{i:05d}", count, seed=i)
    if renamed:
        for k in range(0, len(statuses), RENAME_EVERY):
            statuses[k] = {**statuses[k], "name": f"{statuses[k]['name']}{RENAMED_SUFFIX}"}
    return statuses


def _serve_forever(conn: multiprocessing.connection.Connection) -> None:
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
            target=_serve_forever, args=(child,), daemon=True, name="thulium-standin"
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
