"""The retry policies, built from tenacity's own parts, and the one loop that runs them.

API requests (:func:`api_retrying`): exponential backoff with jitter
(``wait_exponential_jitter``), unless the server said how long to wait: ``Retry-After`` is
honoured up to the longest wait (:class:`wait_retry_after`, as dlt's
``wait_exponential_retry_after`` does). Before retrying a 429, the run's :class:`RetryGate`
closes for every worker (:class:`pause_all_on_429`). Retrying stops at the attempt limit, or
when the next wait would overrun the run's retry budget, or when the run is stopped.

Database writes (:func:`database_retrying`): the same backoff, for a lost connection or a
timeout only. Both sleep through :meth:`etl.stop.Stop.sleep`, which raises
:class:`~etl.errors.InterruptedRun` the moment SIGTERM arrives: no retry wait delays a stop.

:func:`retried` runs an action under either policy: it returns the result with the number of
attempts, and turns the last failure into what the caller says it means.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from etl.config import RetryPolicy
from etl.errors import InterruptedRun
from etl.stop import Stop

logger = logging.getLogger(__name__)

T = TypeVar("T")
E = TypeVar("E", bound=Exception)

TOO_MANY_REQUESTS = 429
# When the API is taken as down (RetryGate.api_down): past the retry budget, this many
# fetches in a row (or one per worker, if more) failing transiently over this many read
# timeouts. An API that hangs would otherwise cost every remaining campaign its timeout.
DOWN_STREAK = 3
DOWN_TIMEOUTS = 2


class RetryGate:
    """State shared by every worker of one run: the retry budget, 429 backoff and rate limit.

    A 429 tells the client that *it* is too fast, not one request; so when one worker gets
    it, every worker waits until the gate opens again before its next request. With a rate
    limit, workers take turns: the next request may leave ``1/max_rps`` after the previous
    one actually left, so a process that stalls (CPU starved, a long pause) sends its
    delayed requests spaced out, never as a burst that makes up for lost time.
    """

    def __init__(self, *, budget: float, max_rps: float = 0.0, stop: Stop | None = None) -> None:
        self._deadline = time.monotonic() + budget
        self._lock = threading.Lock()
        self._turn = threading.Lock()
        self._open_at = 0.0
        self._interval = 1.0 / max_rps if max_rps else 0.0
        self._next_slot = 0.0
        self._failing = 0  # fetches in a row that ended on a transient failure
        self._failing_since = 0.0  # when the first of them ended
        self.stop = stop or Stop()

    def budget_left(self) -> float:
        return self._deadline - time.monotonic()

    def settled(self, *, failed_transiently: bool) -> None:
        """Note how a fetch ended, after its retries: on a failure worth retrying, or not."""
        with self._lock:
            if not failed_transiently:
                self._failing = 0
                return
            if not self._failing:
                self._failing_since = time.monotonic()
            self._failing += 1

    def api_down(self, *, workers: int, read_timeout: float) -> bool:
        """The budget is spent, and :data:`DOWN_STREAK` fetches in a row (or ``workers``, if
        more) have ended on a transient failure for :data:`DOWN_TIMEOUTS` read timeouts: not
        a hiccup, an API down or hanging, where another fetch would only wait out its
        timeouts."""
        with self._lock:
            failing = self._failing >= max(DOWN_STREAK, workers)
            for_long = time.monotonic() - self._failing_since >= DOWN_TIMEOUTS * read_timeout
        return failing and for_long and self.budget_left() <= 0

    def close_for(self, seconds: float) -> None:
        with self._lock:
            self._open_at = max(self._open_at, time.monotonic() + seconds)

    def wait_turn(self) -> None:
        """Wait until the 429 backoff is over and, with a rate limit, this request's turn."""
        if not self._interval:
            self._sleep_until(self._open_at)
            return
        with self._turn:
            self._sleep_until(max(self._open_at, self._next_slot))
            self._next_slot = time.monotonic() + self._interval

    def _sleep_until(self, moment: float) -> None:
        delay = moment - time.monotonic()
        if delay > 0:
            self.stop.sleep(delay)


class wait_retry_after(wait_base):
    """Wait what the failed attempt's ``retry_after`` asks, at most ``max_wait``; otherwise
    what ``fallback`` says."""

    def __init__(self, fallback: wait_base, *, max_wait: float) -> None:
        self.fallback = fallback
        self.max_wait = max_wait

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        asked = getattr(error, "retry_after", None)
        if isinstance(asked, int | float):
            return min(float(asked), self.max_wait)
        return self.fallback(retry_state)


class stop_when_budget_spent(stop_base):
    """Stop once the run is stopping or the next wait would overrun its retry budget."""

    def __init__(self, gate: RetryGate) -> None:
        self._gate = gate

    def __call__(self, retry_state: RetryCallState) -> bool:
        wait = retry_state.upcoming_sleep or 0.0
        return self._gate.stop.is_set() or self._gate.budget_left() < wait


def _backoff(initial: float, maximum: float) -> wait_base:
    """Doubling from ``initial``, plus up to ``initial`` of jitter so that workers failing
    together retry apart, never more than ``maximum``."""
    return wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)


class pause_all_on_429:
    """Before a 429 is retried, every worker waits as long as this one: the answer says the
    client, not one request, is too fast."""

    def __init__(self, gate: RetryGate) -> None:
        self._gate = gate

    def __call__(self, retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if getattr(error, "status", None) == TOO_MANY_REQUESTS:
            self._gate.close_for(retry_state.upcoming_sleep or 0.0)


def _log_api_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.warning(
        "%s; retrying in %.2fs (attempt %d failed)",
        error,
        state.upcoming_sleep or 0.0,
        state.attempt_number,
        extra={"campaign_id": getattr(error, "campaign_id", None)},
    )


def _in_turn(*hooks: Callable[[RetryCallState], None]) -> Callable[[RetryCallState], None]:
    """One tenacity hook that calls ``hooks`` in order."""

    def hook(state: RetryCallState) -> None:
        for each in hooks:
            each(state)

    return hook


def api_retrying(
    policy: RetryPolicy, gate: RetryGate, *, retryable: Callable[[BaseException], bool]
) -> Retrying:
    """The retry loop of one API request (``for attempt in api_retrying(...)``)."""
    return Retrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(policy.attempts) | stop_when_budget_spent(gate),
        wait=wait_retry_after(
            _backoff(policy.initial_wait, policy.max_wait), max_wait=policy.max_wait
        ),
        sleep=gate.stop.sleep,
        before_sleep=_in_turn(pause_all_on_429(gate), _log_api_retry),
        reraise=True,
    )


def database_retrying(
    *,
    attempts: int,
    initial_wait: float,
    stop: Stop,
    retryable: Callable[[BaseException], bool],
    before_sleep: Callable[[RetryCallState], None],
) -> Retrying:
    """The retry loop of one database write: riding out a restart, a failover, a timeout."""
    return Retrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(attempts),
        wait=_backoff(initial_wait, max(60.0, initial_wait)),
        sleep=stop.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def retried(
    retrying: Retrying,
    action: Callable[[int], T],
    *,
    failures: type[E],
    stop: Stop,
    doing: str,
    final: Callable[[E, int], Exception],
) -> tuple[T, int]:
    """``action(attempt_number)`` under ``retrying``: its result, and the attempts it took.

    The last of ``failures``, once no more attempts are made, is classified: after a stop it
    is :class:`InterruptedRun` ("stopped while ``doing``"); otherwise it becomes
    ``final(error, attempts)`` (the error itself, to raise it unchanged). Any other exception
    passes through as it is.
    """
    attempts = 0

    def attempt() -> T:
        nonlocal attempts
        attempts += 1
        return action(attempts)

    try:
        return retrying(attempt), attempts
    except failures as exc:
        if stop.is_set():
            raise InterruptedRun(f"stopped while {doing}") from None
        error = final(exc, attempts)
        if error is exc:
            raise
        raise error from None
