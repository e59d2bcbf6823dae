"""The HTTP transport under the Thulium client: bounded requests that never mix up answers.

Each worker thread has a ``requests.Session`` of its own (one keep-alive connection), so an
answer can only be read by the thread that asked for it. Three rules keep a hostile server,
proxy or load balancer from corrupting or hanging a run:

- **Only a 200 leaves its connection for reuse.** After any other answer (an interim 1xx
  whose real answer is still on its way, an error, a redirect) the worker's connections are
  closed, so a late answer can never be read as the answer to the worker's next request.
- **Every request has a total deadline.** ``read_timeout`` bounds each read, not the whole
  answer: a server that trickles a byte a second never trips it. Each request registers
  with the run's :class:`~etl.stop.Stop` to have its socket shut at its deadline or at a
  stop, whichever comes first, which ends whatever read is blocked on it.
- **Bodies are bounded after decompression.** They are read in chunks and counted as they
  are decoded, so neither an endless chunked body nor a small gzip body that inflates to
  gigabytes can grow the job's memory past ``max_body`` bytes.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import requests.adapters
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

from etl.errors import BodyTooLarge, DeadlineExceeded
from etl.stop import Stop

_CHUNK = 64 * 1024
ERROR_BODY_LIMIT = 64 * 1024  # of an answer other than 200: enough for any error message

_current = threading.local()  # .deadline: the _Deadline of this thread's request in flight


@dataclass(frozen=True)
class Answer:
    """A final answer, its body read (an error body at most ``ERROR_BODY_LIMIT`` bytes)."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


class _Deadline:
    """The end of one request's time; the socket it reads from is shut when it passes."""

    def __init__(self) -> None:
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            expired = self.expired
        if expired:
            _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sock = self._sock
        if sock is not None:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, even for TLS: it wakes a read blocked in another thread
    # without touching the TLS object that read is using.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch(connection: HTTPConnection) -> None:
    deadline: _Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None and connection.sock is not None:
        deadline.watch(connection.sock)


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's
        _watch(self)
        return super().getresponse()


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's
        _watch(self)
        return super().getresponse()


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _Adapter(requests.adapters.HTTPAdapter):
    """A one-connection adapter whose connections hand their socket to the request's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPConnectionPool,
            "https": _WatchedHTTPSConnectionPool,
        }


def _read(response: requests.Response, *, limit: int, truncate: bool) -> bytes:
    """The decoded body, at most ``limit`` bytes: cut there, or BodyTooLarge past it."""
    declared = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
    announced = int(declared) if declared.isascii() and declared.isdigit() else 0
    if not truncate and not encoded and announced > limit:
        raise BodyTooLarge(f"the answer announces {announced:,} bytes", limit=limit)
    # One buffer grown in place, not a list of chunks joined at the end: that would hold a
    # 5 MB answer twice, in every worker at once.
    body = io.BytesIO()
    size = 0
    for chunk in response.iter_content(_CHUNK):
        size += len(chunk)
        if size > limit:
            if not truncate:
                raise BodyTooLarge("the answer goes on past the limit", limit=limit)
            body.write(chunk[: len(chunk) - (size - limit)])
            break
        body.write(chunk)
    return body.getvalue()


class Transport:
    """GETs with a total deadline and a body limit; safe to share between threads.

    Raises ``requests`` exceptions for network and TLS failures, :class:`DeadlineExceeded`
    when the deadline (or a stop) ends a request and :class:`BodyTooLarge` for a 200 over
    ``max_body``.
    """

    def __init__(
        self,
        *,
        user: str,
        password: str,
        headers: Mapping[str, str],
        ca_bundle: str | None,
        connect_timeout: float,
        read_timeout: float,
        deadline: float,
        max_body: int,
        stop: Stop,
    ) -> None:
        # RFC 7617's only charset is UTF-8; requests would send Latin-1 and fail on 'ł' or '€'.
        self._auth = (user.encode("utf-8"), password.encode("utf-8"))
        self._headers = dict(headers)
        self._verify: str | bool = ca_bundle or True
        self._timeout = (connect_timeout, read_timeout)
        self._deadline = deadline
        self._max_body = max_body
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._stop = stop

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = self._auth  # type: ignore[assignment]
            session.headers.update(self._headers)
            session.verify = self._verify
            session.trust_env = False  # no ~/.netrc credentials or REQUESTS_CA_BUNDLE surprises
            adapter = _Adapter(pool_connections=1, pool_maxsize=1, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def get(self, url: str) -> Answer:
        session = self._session()
        reusable = False
        with self._deadline_of_request() as deadline:
            try:
                response = session.get(
                    url, stream=True, timeout=self._timeout, allow_redirects=False
                )
                try:
                    final = response.status_code == 200
                    body = _read(
                        response,
                        limit=self._max_body if final else ERROR_BODY_LIMIT,
                        truncate=not final,
                    )
                    if deadline.expired:  # a body that ends at the connection's close
                        raise DeadlineExceeded(self._deadline)
                    reusable = final
                finally:
                    response.close()
            except requests.RequestException as exc:
                if deadline.expired:
                    raise DeadlineExceeded(self._deadline) from exc
                raise
            finally:
                if not reusable:
                    session.close()  # this worker's connections only: no late answer survives
        return Answer(response.status_code, response.reason or "", response.headers, body)

    @contextlib.contextmanager
    def _deadline_of_request(self) -> Iterator[_Deadline]:
        """This thread's request in flight, its socket shut at its deadline or at a stop."""
        deadline = _current.deadline = _Deadline()
        try:
            with self._stop.cancelling(deadline.expire, within=self._deadline):
                yield deadline
        finally:
            _current.deadline = None

    def close(self) -> None:
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
