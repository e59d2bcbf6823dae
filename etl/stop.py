"""A stop request (SIGTERM, SIGINT) that every part of a run sees, and that cancels what blocks.

Waiting code (retry sleeps, the writer's loop) polls :meth:`Stop.is_set` or sleeps through
:meth:`Stop.sleep`, which raises as soon as a stop is requested. Code that blocks in a call
it cannot poll (a statement waiting for a lock in Postgres) registers a canceller for the
duration of the call with :meth:`Stop.cancelling`; a stop request runs them on a thread of
its own. A request never comes from a signal handler itself: the CLI's handler only wakes a
thread that requests the stop, since the main thread may hold any lock when a signal lands.

What a run still does after a stop has bounds counted from the first request: :data:`GRACE`
seconds for its database work (recording that it was interrupted: :meth:`Stop.grace_left`),
and :data:`DEADLINE` seconds for everything, reporting its metrics included
(:meth:`Stop.time_left`), after which the CLI ends the process whatever it waits on. Both are
well within the 30 s a Kubernetes pod is given.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from etl.errors import InterruptedRun

logger = logging.getLogger(__name__)

#: Seconds the database work that follows a stop may take: recording the run as interrupted.
GRACE = 2.0
#: Seconds from a stop to the end of the process, whatever it waits on.
DEADLINE = 10.0


class Stop:
    """One run's stop request; cheap to check, set from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._cancellers: dict[int, Callable[[], object]] = {}
        self._lock = threading.Lock()
        self._next = 0
        self._requested_at: float | None = None

    def is_set(self) -> bool:
        return self._event.is_set()

    def request(self) -> None:
        """Ask everything to stop, and cancel the blocking calls in progress (on a thread).
        Every request cancels what is registered then: a second signal ends work begun
        after the first."""
        if self._requested_at is None:
            self._requested_at = time.monotonic()
        self._event.set()
        threading.Thread(target=self._cancel_all, name="cancel", daemon=True).start()

    def _cancel_all(self) -> None:
        with self._lock:
            cancellers = list(self._cancellers.values())
        for cancel in cancellers:
            try:
                cancel()
            except Exception as exc:  # the stop goes on; the call ends by its own timeout
                logger.warning("could not cancel a call in progress: %s", exc)

    def grace_left(self) -> float:
        """Seconds left of the :data:`GRACE` that follows the first request (GRACE if none)."""
        return self._left(GRACE)

    def time_left(self) -> float:
        """Seconds left of the :data:`DEADLINE` that follows the first request."""
        return self._left(DEADLINE)

    def _left(self, bound: float) -> float:
        if self._requested_at is None:
            return bound
        return max(0.0, self._requested_at + bound - time.monotonic())

    def check(self, doing: str) -> None:
        """Raise :class:`InterruptedRun` if a stop was requested: before ``doing`` begins."""
        if self.is_set():
            raise InterruptedRun(f"stopped before {doing}")

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if a stop was requested meanwhile."""
        return self._event.wait(max(0.0, seconds))

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, raising :class:`InterruptedRun` as soon as a stop is requested."""
        if self.wait(seconds):
            raise InterruptedRun("stop requested while waiting to retry")

    @contextlib.contextmanager
    def cancelling(self, cancel: Callable[[], object]) -> Iterator[None]:
        """Run ``cancel`` if a stop is requested before the block ends."""
        with self._lock:
            key = self._next
            self._next += 1
            self._cancellers[key] = cancel
        try:
            yield
        finally:
            with self._lock:
                del self._cancellers[key]
