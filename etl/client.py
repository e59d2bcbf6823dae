"""The Thulium client: status URLs, retries and what each kind of answer means.

Transient failures (network errors, timeouts, an interim 1xx answer, 408, 429, 5xx) are
retried with exponential backoff and jitter, honouring ``Retry-After`` up to a cap. A 429
slows every worker down, not just the one that got it, and no retry starts once the run's
retry budget is spent. Permanent failures (other 4xx, a 2xx other than 200) raise at once.
The client returns raw bytes of a 200: validating them is :mod:`etl.records`' job; bounding
and isolating requests is :mod:`etl.transport`'s.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from dataclasses import dataclass

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.stop import stop_base

from etl import __version__
from etl.config import ApiSettings
from etl.errors import ApiError, AuthError, BodyTooLarge, DeadlineExceeded
from etl.records import snippet, thulium_error
from etl.stop import Stop
from etl.transport import Answer, Transport

logger = logging.getLogger(__name__)

USER_AGENT = f"thulium-etl/{__version__} python-requests/{requests.__version__}"
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504}) | frozenset(range(520, 530))
_DELTA_SECONDS = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() accepts '²'


class _TransientError(ApiError):
    """A failure worth another attempt; becomes a plain ApiError once retries run out."""

    def __init__(self, message: str, *, campaign_id: str, status: int | None = None,
                 request_id: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, campaign_id=campaign_id, status=status, request_id=request_id)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Fetched:
    """A campaign's raw answer and how many HTTP attempts it took."""

    campaign_id: str
    status: int
    body: bytes
    attempts: int


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date).

    Anything else (junk bytes, a date in year 99999) is None: our own backoff applies.
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class RetryGate:
    """State shared by every worker of one run: retry deadline, 429 backoff and rate limit.

    A 429 tells the client that *it* is too fast, not one request; so when one worker gets
    it, every worker waits until the gate opens again before its next request. With a rate
    limit, requests are spaced ``1/max_rps`` apart across all workers.
    """

    def __init__(
        self, *, budget: float, max_rps: float | None = None, stop: Stop | None = None
    ) -> None:
        self._deadline = time.monotonic() + budget
        self._lock = threading.Lock()
        self._open_at = 0.0
        self._interval = 1.0 / max_rps if max_rps else 0.0
        self._next_slot = 0.0
        self.stop = stop or Stop()

    def budget_left(self) -> float:
        return self._deadline - time.monotonic()

    def close_for(self, seconds: float) -> None:
        with self._lock:
            self._open_at = max(self._open_at, time.monotonic() + seconds)

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early (and raising) when the run is asked to stop."""
        self.stop.sleep(seconds)

    def wait_turn(self) -> None:
        """Wait until the 429 backoff is over and this request's rate-limit slot comes."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._open_at, self._next_slot)
            self._next_slot = start + self._interval
        if start > now:
            self.sleep(start - now)


class _GateClosed(stop_base):
    """Stop retrying once the run is stopping or the next wait would overrun its budget."""

    def __init__(self, gate: RetryGate) -> None:
        self._gate = gate

    def __call__(self, retry_state: RetryCallState) -> bool:
        wait = retry_state.upcoming_sleep or 0.0
        return self._gate.stop.is_set() or self._gate.budget_left() < wait


def _describe(answer: Answer, messages: list[str]) -> str:
    """``HTTP 503 Service Unavailable; Thulium said: …`` for an error answer."""
    text = f"HTTP {answer.status} {answer.reason}".rstrip()
    if messages:
        text += f"; Thulium said: {'; '.join(messages)}"
    elif answer.body:
        kind = answer.headers.get("Content-Type", "unknown type").split(";")[0]
        text += f"; body ({kind}): {snippet(answer.body)!r}"
    return text


class ThuliumClient:
    """Fetches campaign statuses; safe to share between worker threads."""

    def __init__(self, settings: ApiSettings, *, gate: RetryGate | None = None) -> None:
        self._settings = settings
        self._gate = gate or RetryGate(budget=settings.retry.budget, max_rps=settings.max_rps)
        self._transport = Transport(
            user=settings.user,
            password=settings.password,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            ca_bundle=settings.ca_bundle,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.timeout,
            deadline=settings.request_deadline,
            max_body=settings.max_body_bytes,
        )

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> ThuliumClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def statuses_url(self, campaign_id: str) -> str:
        return f"{self._settings.base_url}/outbounds/{campaign_id}/statuses"

    def fetch_statuses(self, campaign_id: str) -> Fetched:
        """GET one campaign's statuses, retrying transient failures.

        Raises :class:`AuthError` on 401, :class:`ApiError` on any other failure (with the
        number of attempts made) and :class:`InterruptedRun` if the run is stopped.
        """
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, _TransientError)),
            stop=stop_after_attempt(self._settings.retry.attempts) | _GateClosed(self._gate),
            wait=self._wait,
            sleep=self._gate.sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    status, body = self._get(campaign_id)
            return Fetched(campaign_id, status, body, attempts)
        except _TransientError as exc:
            message = exc.message
            if attempts > 1:
                message += f" (after {attempts} attempts)"
            if attempts < self._settings.retry.attempts and not self._gate.stop.is_set():
                message += "; no more retries: the run's THULIUM_RETRY_BUDGET is spent"
            raise ApiError(
                message, campaign_id=campaign_id, status=exc.status,
                request_id=exc.request_id, attempts=attempts,
            ) from None
        except ApiError as exc:
            exc.attempts = attempts
            raise

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _TransientError) and exc.retry_after is not None:
            wait = min(exc.retry_after, self._settings.retry.max_wait)
            if exc.status == 429:
                self._gate.close_for(wait)
            return wait
        # Exponential backoff with jitter, so that workers failing together retry apart.
        policy = self._settings.retry
        backoff = policy.initial_wait * 2.0 ** (state.attempt_number - 1)
        return min(policy.max_wait, backoff + random.uniform(0, policy.initial_wait))

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning(
            "%s; retrying in %.2fs (attempt %d failed)",
            exc, state.upcoming_sleep, state.attempt_number,
            extra={"campaign_id": getattr(exc, "campaign_id", None)},
        )

    def _get(self, campaign_id: str) -> tuple[int, bytes]:
        self._gate.wait_turn()
        try:
            answer = self._transport.get(self.statuses_url(campaign_id))
        except BodyTooLarge as exc:
            raise ApiError(str(exc), campaign_id=campaign_id, status=200) from None
        except DeadlineExceeded as exc:
            raise _TransientError(str(exc), campaign_id=campaign_id) from None
        except requests.exceptions.SSLError as exc:
            raise ApiError(f"TLS error: {exc}", campaign_id=campaign_id) from None
        except requests.RequestException as exc:
            raise _TransientError(
                f"{type(exc).__name__}: {_network_reason(exc)}", campaign_id=campaign_id
            ) from None

        status = answer.status
        if status == 200:
            return status, answer.body
        if status < 200:
            raise _TransientError(
                f"HTTP {status} {answer.reason}: an interim answer where the final one was "
                "due; its connection is closed and the request made again on a new one",
                campaign_id=campaign_id, status=status,
            )
        if status < 300:
            raise ApiError(
                f"HTTP {status} {answer.reason}: only a 200 answer is the complete list of "
                "statuses, so nothing was changed",
                campaign_id=campaign_id, status=status,
                request_id=answer.headers.get("X-Request-Id"),
            )
        request_id, messages = thulium_error(answer.body)
        request_id = request_id or answer.headers.get("X-Request-Id")
        message = _describe(answer, messages)
        if status in _TRANSIENT_STATUS:
            raise _TransientError(
                message, campaign_id=campaign_id, status=status, request_id=request_id,
                retry_after=parse_retry_after(answer.headers.get("Retry-After")),
            )
        if status == 401:
            raise AuthError(
                f"{message}: check THULIUM_USER and THULIUM_PASSWORD",
                campaign_id=campaign_id, status=status, request_id=request_id,
            )
        if 300 <= status < 400:
            location = answer.headers.get("Location", "?")
            message += f": redirected to {location}; check THULIUM_BASE_URL"
        raise ApiError(message, campaign_id=campaign_id, status=status, request_id=request_id)


def _network_reason(exc: Exception) -> str:
    """The innermost, most specific reason of a requests/urllib3 error."""
    reason: BaseException = exc
    while reason.args and isinstance(reason.args[0], BaseException):
        reason = reason.args[0]
    seen = getattr(reason, "reason", None)
    if isinstance(seen, BaseException):
        reason = seen
    return str(reason) or type(reason).__name__
