"""The fetch pipeline that ``sync`` and ``check`` share: a pool of workers, results streamed.

``concurrency`` worker threads take campaign ids in order and fetch each one
(:func:`fetch_campaign`: the client fetches, the parser validates), all through one client,
so they share its retry gate (budget, 429 backoff, rate limit). Results stream out through a
bounded queue, so memory never grows with the number of campaigns. Workers stop starting
campaigns (:class:`~etl.outcomes.Halt`) at a 401, since the credentials are the same for
every one, and when the API is down past the retry budget
(:meth:`etl.retry.RetryGate.api_down`), since an API that hangs would cost every remaining
campaign its timeout. Campaigns never started are not reported; the caller knows which ones
it did not hear about.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

from etl.client import ThuliumClient
from etl.config import WriteSettings
from etl.errors import ApiError, AuthError, CampaignError, InterruptedRun, PayloadError
from etl.outcomes import CampaignResult, Halt
from etl.records import Snapshot, parse_statuses
from etl.stop import Stop

logger = logging.getLogger(__name__)

_DONE = object()  # a worker's last word
_WAKE = object()  # a stop: a reader waiting for a result looks at it


@dataclass(frozen=True)
class Fetched:
    """A campaign's validated snapshot and what fetching it took."""

    snapshot: Snapshot
    attempts: int
    duration: float
    http_status: int

    @property
    def campaign_id(self) -> str:
        return self.snapshot.campaign_id


Result = Fetched | CampaignResult  # a CampaignResult here is a failure or a skip


def queued_weight(max_rows: int) -> int:
    """What may wait to be written while a batch of ``max_rows`` is: a batch and a half, so
    that what piles up makes the next batch a full one."""
    return max_rows + max_rows // 2


def weight(result: Result) -> int:
    """What a result weighs in the queue and in a batch: its statuses, and at least one (a
    failure, an empty list), so that memory and batches are bounded by rows and by count."""
    return max(1, len(result.snapshot.statuses)) if isinstance(result, Fetched) else 1


@dataclass(frozen=True)
class Arrival:
    """A result, and when its fetch finished (``time.monotonic()``)."""

    result: Result
    at: float


def fetch_campaign(client: ThuliumClient, campaign_id: str) -> Result:
    """Fetch and validate one campaign; a failure is a failed result.

    Raises :class:`AuthError` (the run's business, not the campaign's) and
    :class:`InterruptedRun`.
    """
    started = time.monotonic()
    try:
        reply = client.fetch_statuses(campaign_id)
    except AuthError:
        raise
    except ApiError as exc:
        return CampaignResult.failed(exc, duration=time.monotonic() - started)
    try:
        snapshot = parse_statuses(reply.body, campaign_id=campaign_id)
    except PayloadError as exc:
        return CampaignResult.failed(
            exc,
            attempts=reply.attempts,
            http_status=reply.status,
            duration=time.monotonic() - started,
        )
    return Fetched(snapshot, reply.attempts, time.monotonic() - started, reply.status)


class Fetcher:
    """Fetches ``campaign_ids`` on ``concurrency`` threads; read results with :meth:`get`
    or by iterating. Use it as a context manager: leaving stops the workers."""

    def __init__(
        self,
        client: ThuliumClient,
        campaign_ids: Sequence[str],
        *,
        concurrency: int,
        stop: Stop,
        max_queued: int = queued_weight(WriteSettings.batch_rows),
    ) -> None:
        self._client = client
        self._stop = stop
        self._todo: queue.SimpleQueue[str] = queue.SimpleQueue()
        for campaign_id in campaign_ids:
            self._todo.put(campaign_id)
        # Results wait here until read; their total weight() stays within max_queued (one
        # result always may wait, however heavy), so memory is bounded by rows, not by
        # campaigns of unknown size. Workers with a result and no room wait for room.
        self._results: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._room = threading.Condition()
        self._queued = 0
        self._max_queued = max_queued
        self._closing = threading.Event()
        self._exits = contextlib.ExitStack()
        self._workers = [
            threading.Thread(target=self._work, name=f"fetch-{n}", daemon=True)
            for n in range(min(concurrency, len(campaign_ids)))
        ]
        self._running = len(self._workers)
        self.halted: Halt | None = None

    def __enter__(self) -> Fetcher:
        self._exits.enter_context(self._stop.cancelling(self._close))
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Workers finish the request in hand (or die with the process: they are daemons);
        # any waiting for room hands its result over at once, then stops.
        self._exits.close()
        self._close()
        with contextlib.suppress(queue.Empty):
            while True:
                self._results.get_nowait()

    @property
    def exhausted(self) -> bool:
        """Every worker has finished and every result has been read."""
        return self._running == 0

    def get(self, timeout: float | None) -> Arrival | None:
        """The next result, or None if none arrived within ``timeout`` (None: until one
        does), all are read, or the run is stopped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._running:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._results.get(timeout=left)
            except queue.Empty:
                return None
            if item is _WAKE:
                return None
            if item is _DONE:
                self._running -= 1
                continue
            assert isinstance(item, Arrival)
            with self._room:
                self._queued -= weight(item.result)
                self._room.notify_all()
            return item
        return None

    def __iter__(self) -> Iterator[Result]:
        """Every result as it arrives, until all are read or the run is stopped."""
        while not self.exhausted and not self._stop.is_set():
            arrival = self.get(None)
            if arrival is not None:
                yield arrival.result

    def _work(self) -> None:
        try:
            while not self._closing.is_set() and not self._stop.is_set():
                if self._client.api_down(workers=len(self._workers)):
                    if not self._todo.empty():
                        self.halted = self.halted or Halt.API_DOWN
                    return
                try:
                    campaign_id = self._todo.get_nowait()
                except queue.Empty:
                    return
                self._hand_over(self._fetch(campaign_id))
        finally:
            self._results.put(_DONE)

    def _close(self) -> None:
        """Let every worker hand over the result it holds and stop; wake a waiting reader."""
        with self._room:
            self._closing.set()
            self._room.notify_all()
        self._results.put(_WAKE)

    def _hand_over(self, result: Result) -> None:
        arrival, size = Arrival(result, time.monotonic()), weight(result)
        with self._room:
            self._room.wait_for(
                lambda: (
                    self._queued == 0
                    or self._queued + size <= self._max_queued
                    or self._closing.is_set()
                )
            )
            self._queued += size
        self._results.put(arrival)

    def _fetch(self, campaign_id: str) -> Result:
        started = time.monotonic()
        try:
            return fetch_campaign(self._client, campaign_id)
        except AuthError as exc:
            self.halted = Halt.AUTH
            self._closing.set()
            return CampaignResult.failed(exc, duration=time.monotonic() - started)
        except InterruptedRun:
            return CampaignResult.skipped(campaign_id, "the run was interrupted")
        except Exception as exc:  # a bug must cost one campaign, not the night's run
            logger.exception("campaign %s: unexpected error", campaign_id)
            error = CampaignError(
                f"unexpected {type(exc).__name__}: {exc}", campaign_id=campaign_id
            )
            return CampaignResult.failed(error, duration=time.monotonic() - started)
