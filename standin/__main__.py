"""Run the stand-in from the shell, e.g. for the demo or manual benchmarks.

Example: ``python -m standin --port 0 --campaigns 3 --statuses 5``
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from standin.server import StandIn, sample_statuses

logger = logging.getLogger(__name__)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m standin", description="Stand-in Thulium statuses API."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--user", default="demo")
    p.add_argument("--password", default="demo")
    p.add_argument("--campaigns", type=int, default=3, help="ids 00001..0000N")
    p.add_argument("--statuses", type=int, default=5, help="statuses per campaign")
    p.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; the first stdout line carries the base URL."""
    args = _parse(argv)
    logging.basicConfig(level=args.log_level.upper())
    standin = StandIn(
        user=args.user,
        password=args.password,
        latency=args.latency,
        host=args.host,
        port=args.port,
    )
    for i in range(1, args.campaigns + 1):
        cid = f"{i:05d}"
        standin.set_statuses(cid, sample_statuses(cid, args.statuses, seed=i))

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("stand-in: got signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    with standin:
        print(f"serving {standin.url}", flush=True)
        # Timed waits keep the main thread responsive to signals.
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
