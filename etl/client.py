"""The Thulium client: status URLs, and what each kind of answer means.

Transient failures (network errors, timeouts, an interim 1xx answer, 408, 429, 5xx) are
retried by :func:`etl.retry.api_retrying`. Permanent failures (other 4xx, a 2xx other than
200) raise at once. The client returns the raw bytes of a 200: validating them is
:mod:`etl.records`' job, and bounding and isolating requests is :mod:`etl.transport`'s.
"""

from __future__ import annotations

import email.utils
import re
import time
from dataclasses import dataclass
from functools import partial
from typing import TypedDict

import requests

from etl import __version__
from etl.config import ApiSettings, RetryPolicy
from etl.errors import ApiError, AuthError, BodyTooLarge, DeadlineExceeded
from etl.outcomes import RequestCounts
from etl.records import STATS_SUBJECT, snippet, thulium_error, thulium_said
from etl.retry import RetryGate, api_retrying, retried
from etl.transport import Answer, Transport

USER_AGENT = f"thulium-etl/{__version__} python-requests/{requests.__version__}"
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504}) | frozenset(range(520, 530))
_DELTA_SECONDS = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() accepts '²'


class _TransientError(ApiError):
    """A failure worth another attempt; becomes a plain ApiError once retries run out."""

    def __init__(
        self,
        message: str,
        *,
        campaign_id: str,
        subject: str,
        attempts: int,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            campaign_id=campaign_id,
            subject=subject,
            status=status,
            request_id=request_id,
            attempts=attempts,
        )
        self.retry_after = retry_after


class _RetriesSpent(ApiError):
    """A transient failure that no more attempts will be made for."""


class _Who(TypedDict):
    campaign_id: str
    subject: str


@dataclass(frozen=True)
class _Target:
    """What one fetch is for: its URL, and who its errors are about."""

    url: str
    campaign_id: str  # "" for the list of active campaigns
    subject: str

    def who(self) -> _Who:
        return {"campaign_id": self.campaign_id, "subject": self.subject}

    @property
    def listing(self) -> str:
        """What its 200 answer lists."""
        return "statuses" if self.campaign_id else "active campaigns"


@dataclass(frozen=True)
class Reply:
    """A campaign's 200 answer and how many HTTP attempts it took."""

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


def _describe(answer: Answer, messages: list[str]) -> str:
    """``HTTP 503 Service Unavailable; Thulium said: …`` for an error answer."""
    text = f"HTTP {answer.status} {answer.reason}".rstrip()
    if messages:
        text += thulium_said(messages)
    elif answer.body:
        kind = answer.headers.get("Content-Type", "unknown type").split(";")[0]
        text += f"; body ({kind}): {snippet(answer.body)!r}"
    return text


class ThuliumClient:
    """Fetches campaign statuses; safe to share between worker threads."""

    def __init__(
        self,
        api: ApiSettings,
        policy: RetryPolicy,
        gate: RetryGate,
        *,
        counts: RequestCounts | None = None,
    ) -> None:
        self._api = api
        self._policy = policy
        self._gate = gate
        self.counts = counts or RequestCounts()
        self._transport = Transport(
            user=api.user,
            password=api.password,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            ca_bundle=api.ca_bundle,
            connect_timeout=api.connect_timeout,
            read_timeout=api.timeout,
            deadline=api.request_deadline,
            max_body=api.max_body_bytes,
            stop=gate.stop,
        )

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> ThuliumClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def statuses_url(self, campaign_id: str) -> str:
        return f"{self._api.base_url}/outbounds/{campaign_id}/statuses"

    def fetch_statuses(self, campaign_id: str) -> Reply:
        """GET one campaign's statuses, retrying transient failures.

        Raises :class:`AuthError` on 401, :class:`ApiError` on any other failure (with the
        number of attempts made) and :class:`~etl.errors.InterruptedRun` if the run stops.
        """
        url = self.statuses_url(campaign_id)
        return self._fetch(_Target(url, campaign_id, f"campaign {campaign_id}"))

    def fetch_stats(self) -> Reply:
        """GET ``/outbounds/stats`` (the active campaigns), retried like a campaign's
        statuses; its errors are about ``the active campaigns``."""
        url = f"{self._api.base_url}/outbounds/stats"
        return self._fetch(_Target(url, "", STATS_SUBJECT))

    def api_down(self, *, workers: int) -> bool:
        """:meth:`RetryGate.api_down`, with this client's read timeout."""
        return self._gate.api_down(workers=workers, read_timeout=self._api.timeout)

    def _fetch(self, target: _Target) -> Reply:
        transient = False
        try:
            reply, _ = retried(
                api_retrying(
                    self._policy, self._gate, retryable=lambda e: isinstance(e, _TransientError)
                ),
                partial(self._get, target),
                failures=_TransientError,
                stop=self._gate.stop,
                doing=f"fetching {target.subject}",
                final=partial(self._gave_up, target),
            )
        except _RetriesSpent:
            transient = True
            raise
        finally:
            self._gate.settled(failed_transiently=transient)
        return reply

    def _gave_up(self, target: _Target, exc: _TransientError, attempts: int) -> ApiError:
        """A transient failure past its retries, saying why there were no more."""
        message = exc.message
        if attempts > 1:
            message += f" (after {attempts} attempts)"
        if attempts < self._policy.attempts:
            message += "; no more retries: the run's THULIUM_RETRY_BUDGET is spent"
        return _RetriesSpent(
            message,
            **target.who(),
            status=exc.status,
            request_id=exc.request_id,
            attempts=attempts,
        )

    def _get(self, target: _Target, attempt: int) -> Reply:
        if attempt > 1:
            self.counts.retried(1)
        self._gate.wait_turn()
        answer = self._request(target, attempt=attempt)
        return _understood(target, answer, attempt=attempt)

    def _request(self, target: _Target, *, attempt: int) -> Answer:
        """One GET, counted; getting no usable answer at all is one of our errors."""
        try:
            answer = self._transport.get(target.url)
        except BodyTooLarge as exc:
            self.counts.answered(200)
            raise ApiError(str(exc), **target.who(), status=200, attempts=attempt) from None
        except DeadlineExceeded as exc:
            self.counts.answered(None)
            raise _TransientError(str(exc), **target.who(), attempts=attempt) from None
        except requests.exceptions.SSLError as exc:
            self.counts.answered(None)
            raise ApiError(f"TLS error: {exc}", **target.who(), attempts=attempt) from None
        except requests.RequestException as exc:
            self.counts.answered(None)
            raise _TransientError(
                f"{type(exc).__name__}: {_network_reason(exc)}",
                **target.who(),
                attempts=attempt,
            ) from None
        self.counts.answered(answer.status)
        return answer


def _understood(target: _Target, answer: Answer, *, attempt: int) -> Reply:
    """What an answer means: a 200's body, or the error it is (raised)."""
    status = answer.status
    if status == 200:
        return Reply(status, answer.body, attempt)
    if status < 200:
        raise _TransientError(
            f"HTTP {status} {answer.reason}: an interim answer where the final one was "
            "due; its connection is closed and the request made again on a new one",
            **target.who(),
            status=status,
            attempts=attempt,
        )
    if status < 300:
        raise ApiError(
            f"HTTP {status} {answer.reason}: only a 200 answer is the complete list of "
            f"{target.listing}, so nothing was changed",
            **target.who(),
            status=status,
            request_id=answer.headers.get("X-Request-Id"),
            attempts=attempt,
        )
    raise _error_answer(target, answer, attempt=attempt)


def _error_answer(target: _Target, answer: Answer, *, attempt: int) -> ApiError:
    """The error a 3xx, 4xx or 5xx answer is, in Thulium's words when it sent any."""
    status = answer.status
    request_id, messages = thulium_error(answer.body)
    request_id = request_id or answer.headers.get("X-Request-Id")
    message = _describe(answer, messages)
    if status in _TRANSIENT_STATUS:
        return _TransientError(
            message,
            **target.who(),
            status=status,
            request_id=request_id,
            retry_after=parse_retry_after(answer.headers.get("Retry-After")),
            attempts=attempt,
        )
    kind = ApiError
    if status == 401:
        kind, message = AuthError, f"{message}: check THULIUM_USER and THULIUM_PASSWORD"
    elif 300 <= status < 400:
        location = answer.headers.get("Location")
        message += (
            f": redirected to {location}; check THULIUM_BASE_URL"
            if location
            else f": not the list of {target.listing} (a {status} without a Location)"
        )
    elif status == 403:
        message += ": the API user may lack Thulium's permission for this method"
    elif status == 404 and not target.campaign_id:
        message += ": this Thulium may not offer GET /outbounds/stats; list the ids instead"
    return kind(message, **target.who(), status=status, request_id=request_id, attempts=attempt)


def _network_reason(exc: Exception) -> str:
    """The innermost, most specific reason of a requests/urllib3 error."""
    reason: BaseException = exc
    while reason.args and isinstance(reason.args[0], BaseException):
        reason = reason.args[0]
    seen = getattr(reason, "reason", None)
    if isinstance(seen, BaseException):
        reason = seen
    return str(reason) or type(reason).__name__
