"""A stop request (SIGTERM, SIGINT) that every part of a run sees, and the one way it cancels
what blocks.

Code that waits in a call it cannot poll registers, for the length of the call, what ends
the wait and how long it may last: ``with stop.cancelling(cancel, within=seconds)``. The
stop's clock (one thread) runs ``cancel`` when a stop is requested or the bound has passed,
whichever comes first, once, each on a thread of its own so that no cancel holds up another.
Waits that can poll sleep through :meth:`Stop.sleep` or check :meth:`Stop.is_set`. A request
never comes from a signal handler itself: the CLI's handler only wakes a thread that
requests the stop, since the main thread may hold any lock when a signal lands.

Every place that waits, what ends the wait at a stop, and its bound:

- *An HTTP request* (:mod:`etl.transport`): its socket is shut. Bound:
  ``THULIUM_REQUEST_DEADLINE`` for the whole request, ``THULIUM_TIMEOUT`` for each read.
- *A statement, a COPY, a lock wait* (:func:`etl.database.bounded`): a cancel, then, if the
  statement has not ended :data:`~etl.database.CUT_AFTER` seconds later, its connection is
  cut and its session ended. Bound: ``THULIUM_DB_STATEMENT_TIMEOUT`` and
  ``THULIUM_DB_LOCK_TIMEOUT`` (enforced by the server), about a minute for a server gone
  silent (TCP keepalives); begun after a stop, what is left of :data:`GRACE` (the run lock's
  last note: 1 s), then up to twice ``CUT_AFTER`` for the cancel and the cut to take.
- *A retry's wait, a rate limit's turn* (:meth:`Stop.sleep`): the stop itself. Bound: the
  wait, at most ``THULIUM_RETRY_MAX_WAIT`` for the API, a minute for the database.
- *The result queue* (:class:`etl.fetch.Fetcher`): both sides are woken. Bound: a reader
  waits at most a batch's linger; a worker with a result waits for room as long as the
  writer takes to write a batch.
- *The push and the metrics file* (:func:`etl.metrics.export`): their threads are left
  behind. Bound: :data:`etl.metrics.REPORT_DEADLINE`; begun after a stop, what is left of
  :data:`DEADLINE` less a second.
- *The signal watcher* (:mod:`etl.cli`): it reads the signals for the command's length; the
  process ends :data:`DEADLINE` seconds after the first stop, whatever it waits on
  (``Stop(at_deadline=…)``).

Both bounds that follow a stop are well within the 30 s a Kubernetes pod is given. Each
request cancels what is registered then and not cancelled yet: a second signal ends the work
begun after the first (the reporting of a stopped run).
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


class _Wait:
    """One registered wait: what ends it, and when at the latest (``time.monotonic()``)."""

    def __init__(self, cancel: Callable[[], object], *, due: float, stops: bool) -> None:
        self.cancel = cancel
        self.due = due
        self.stops = stops  # a stop request cancels it (not the process's own deadline)
        self.done = False  # its cancel was chosen to run
        self.over = False  # the wait has ended: its cancel must not run any more
        self.running = threading.Lock()  # held while its cancel runs, and to end the wait

    def run(self) -> None:
        """Cancel the wait, unless it has ended meanwhile: a cancel never reaches what the
        waiting code does next (the next request on a kept-alive connection, the next
        statement on a pooled one)."""
        with self.running:
            if self.over:
                return
            try:
                self.cancel()
            except Exception as exc:  # the stop goes on; the call ends by its own bound
                logger.warning("could not cancel a call in progress: %s", exc)

    def end(self) -> None:
        """The wait is over; a cancel running now finishes first."""
        with self.running:
            self.over = True


class Stop:
    """One run's stop request; cheap to check, set from any thread.

    ``at_deadline`` runs :data:`DEADLINE` seconds after the first request (the CLI ends the
    process there).
    """

    def __init__(self, *, at_deadline: Callable[[], object] | None = None) -> None:
        self._event = threading.Event()
        self._waits: set[_Wait] = set()
        self._changed = threading.Condition()  # guards _waits; wakes the clock
        self._clock: threading.Thread | None = None
        self._next_due = float("inf")  # what the clock waits for
        self._at_deadline = at_deadline
        self._requested_at: float | None = None

    def is_set(self) -> bool:
        return self._event.is_set()

    def request(self) -> None:
        """Ask everything to stop, and cancel every wait registered now."""
        if self._requested_at is None:
            self._requested_at = time.monotonic()
            if self._at_deadline is not None:
                self._add(_Wait(self._at_deadline, due=self._requested_at + DEADLINE, stops=False))
        self._event.set()
        self._cancel(stopping=True)

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
    def cancelling(
        self, cancel: Callable[[], object], *, within: float | None = None
    ) -> Iterator[None]:
        """Run ``cancel`` if a stop is requested, or ``within`` seconds pass, before the block
        ends (once, on a thread of its own)."""
        due = float("inf") if within is None else time.monotonic() + max(0.0, within)
        wait = _Wait(cancel, due=due, stops=True)
        self._add(wait)
        try:
            yield
        finally:
            with self._changed:
                self._waits.discard(wait)
            wait.end()

    def _add(self, wait: _Wait) -> None:
        with self._changed:
            self._waits.add(wait)
            if wait.due == float("inf"):
                return
            if self._clock is None:
                self._clock = threading.Thread(target=self._tick, name="stop-clock", daemon=True)
                try:
                    self._clock.start()
                except RuntimeError:  # no thread can be had: the wait has no bound; say so
                    self._clock = None
                    self._waits.discard(wait)
                    raise
            elif wait.due < self._next_due:
                self._changed.notify()  # a bound sooner than the one the clock waits for

    def _tick(self) -> None:
        """The clock: cancel each wait whose bound has passed; ends when no bound is left
        (or on an error, so that the next bound starts a clock again)."""
        try:
            self._run_clock()
        except BaseException:
            with self._changed:
                self._clock = None
            raise

    def _run_clock(self) -> None:
        while True:
            with self._changed:
                due = min((w.due for w in self._waits if not w.done), default=float("inf"))
                if due == float("inf"):
                    self._clock = None  # decided under the lock: a new bound starts a clock
                    return
                pause = due - time.monotonic()
                if pause > 0:
                    self._next_due = due
                    self._changed.wait(pause)
                    self._next_due = float("inf")
                    continue
            self._cancel(due_by=time.monotonic())

    def _cancel(self, *, stopping: bool = False, due_by: float = float("-inf")) -> None:
        """Cancel the waits a stop ends (``stopping``) or whose bound is ``due_by``."""
        with self._changed:
            chosen = [
                wait
                for wait in self._waits
                if not wait.done and ((stopping and wait.stops) or wait.due <= due_by)
            ]
            for wait in chosen:
                wait.done = True
        for wait in chosen:
            try:
                threading.Thread(target=wait.run, name="cancel", daemon=True).start()
            except RuntimeError:  # no thread to be had: cancel here, one after the other
                wait.run()
