"""Stand-in Thulium HTTP server: ``GET /api/outbounds/<id>/statuses`` and ``/outbounds/stats``.

Test equipment only: it lets tests, the demo and benchmarks exercise the real
HTTP client path (Basic auth, keep-alive, timeouts, broken answers) without the
SaaS. Production code never imports it. Stdlib only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hmac
import json
import logging
import random
import re
import socket
import socketserver
import ssl
import struct
import threading
import time
import uuid
import zlib
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal
from urllib.parse import unquote, urlsplit

__all__ = ["STATS", "SYSTEM_STATUSES", "Fault", "StandIn", "sample_statuses"]

logger = logging.getLogger(__name__)

#: The eight ``system_status`` values documented by Thulium.
SYSTEM_STATUSES: tuple[str, ...] = (
    "TO_CALL",
    "IN_PROGRESS",
    "CALL",
    "MY_RECORD",
    "NO_CALL",
    "ABANDONED_AFTER_N_TRIES",
    "CALL_NO_SOONER_THAN",
    "CALL_PROGRESSIVE",
)

# One Polish label per system status; every one has a non-ASCII letter so any
# sample exercises UTF-8 end to end.
_NAMES: tuple[str, ...] = (
    "Świeży kontakt",
    "W trakcie rozmów",
    "Połączono",
    "Mój rekord",
    "Nie dzwonić",
    "Porzucony po próbach",
    "Oddzwonić później",
    "Połączenie progresywne",
)

# Byte-for-byte the broken sample from Thulium's docs: opens with [, closes with }.
INVALID_JSON_BODY = (
    b'[{"status_id": "3", "system_status": "TO_CALL", '
    b'"dictionary_status_id": null, "name": "Nowy"}}'
)

_ROUTE = re.compile(r"^/api/outbounds/([^/]+)/statuses/?$")
_STATS_ROUTE = re.compile(r"^/api/outbounds/stats/?$")
#: The key of ``GET /outbounds/stats`` wherever a campaign id is taken (faults, counts): the
#: active campaigns' endpoint misbehaves on demand like any campaign's statuses.
STATS = "stats"
_JSON = "application/json"
_NO_BODY_CODES = frozenset({204, 304})
_RST_LINGER = struct.pack("ii", 1, 0)

FaultKind = Literal[
    "status",
    "delay",
    "reset",
    "truncated",
    "invalid_json",
    "html",
    "interim",
    "trickle",
    "endless",
    "gzip_bomb",
]


def sample_statuses(campaign_id: str, n: int, *, seed: int = 0) -> list[dict[str, object]]:
    """Deterministic, realistic statuses so demos and benchmarks need no fixtures.

    ``status_id`` values are consecutive digit strings starting at an offset
    derived from ``campaign_id`` and ``seed``; ``system_status`` cycles through
    the eight documented values; ``dictionary_status_id`` alternates int/None.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"{campaign_id}/{seed}")
    offset = rng.randrange(1, 900) * 100
    out: list[dict[str, object]] = []
    for i in range(n):
        k = i % len(SYSTEM_STATUSES)
        out.append(
            {
                "status_id": str(offset + i + 1),
                "system_status": SYSTEM_STATUSES[k],
                "dictionary_status_id": (offset + i + 1) * 10 if i % 2 == 0 else None,
                "name": f"{_NAMES[k]} {i + 1}",
            }
        )
    return out


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _to_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


@functools.lru_cache(maxsize=4)
def _gzip_bomb(size: int) -> bytes:
    """A gzip body that inflates to ``size`` bytes of a valid, empty JSON array."""
    gzipped = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip framing
    block = b" " * (1 << 20)
    parts = [gzipped.compress(b"[")]
    spaces = size - 2
    while spaces > 0:
        parts.append(gzipped.compress(block[: min(spaces, len(block))]))
        spaces -= len(block)
    parts.append(gzipped.compress(b"]") + gzipped.flush())
    return b"".join(parts)


def _error_body(request_id: str, message: str, code: int) -> bytes:
    """Thulium-style error document, so clients can be tested on real shapes."""
    doc = {"request_id": request_id, "errors": [{"message": message, "code": code}]}
    return json.dumps(doc).encode("utf-8")


@dataclass(frozen=True)
class Fault:
    """One misbehaviour to serve instead of the normal answer.

    Build with the classmethods; the fields are an implementation detail.
    ``body=None`` on a status fault means "Thulium error JSON" for codes >= 400
    and an empty body otherwise.
    """

    kind: FaultKind
    code: int = 200
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = _JSON
    seconds: float = 0.0
    reason: str | None = None
    size: int = 0
    headers_first: bool = False

    @classmethod
    def status(
        cls,
        code: int,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = _JSON,
        reason: str | None = None,
    ) -> Fault:
        """Any HTTP status, e.g. 500/503 to exercise retries.

        ``reason`` replaces the status line's phrase and header values go out as Latin-1
        bytes, so both can carry any byte a misbehaving proxy might send (a NUL, say).
        An ``X-Request-Id`` among ``headers`` replaces the stand-in's own.
        """
        if not 100 <= code <= 599:
            raise ValueError(f"HTTP status out of range: {code}")
        return cls(
            kind="status",
            code=code,
            body=None if body is None else _to_bytes(body),
            headers=tuple((headers or {}).items()),
            content_type=content_type,
            reason=reason,
        )

    @classmethod
    def retry_after(cls, value: str, *, code: int = 429) -> Fault:
        """Throttling answer carrying ``Retry-After`` (seconds or HTTP date)."""
        return cls.status(code, headers={"Retry-After": value})

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Sleep, then answer normally: trips client read timeouts."""
        if seconds < 0:
            raise ValueError(f"delay must be >= 0, got {seconds}")
        return cls(kind="delay", seconds=float(seconds))

    @classmethod
    def reset(cls) -> Fault:
        """Abort the connection with a TCP RST, sending nothing."""
        return cls(kind="reset")

    @classmethod
    def truncated(cls) -> Fault:
        """200 with the full Content-Length but half the body, then close."""
        return cls(kind="truncated")

    @classmethod
    def invalid_json(cls) -> Fault:
        """200 with the malformed JSON sample from Thulium's own docs."""
        return cls(kind="invalid_json", body=INVALID_JSON_BODY)

    @classmethod
    def interim(cls, code: int = 103, *, delay: float = 0.0) -> Fault:
        """An interim 1xx answer (``103 Early Hints``), then ``delay`` s later the real one.

        Both go out on the same connection, as HTTP/1.1 allows: a client that takes the
        1xx for the final answer finds the real one waiting as the answer to its next request.
        """
        if not 100 <= code <= 199 or code == 100:
            raise ValueError(f"not an interim status other than 100 Continue: {code}")
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay}")
        return cls(kind="interim", code=code, seconds=float(delay))

    @classmethod
    def trickle(cls, interval: float, *, headers_first: bool = False) -> Fault:
        """The normal answer, one byte every ``interval`` seconds (the head at once if asked).

        Every single read returns within any read timeout, so only a total deadline ends it.
        """
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        return cls(kind="trickle", seconds=float(interval), headers_first=headers_first)

    @classmethod
    def endless(cls) -> Fault:
        """200 with a chunked body that never ends: status objects, as fast as they are read."""
        return cls(kind="endless")

    @classmethod
    def gzip_bomb(cls, size: int) -> Fault:
        """200, ``Content-Encoding: gzip``: a small body that inflates to ``size`` bytes."""
        if size < 2:
            raise ValueError(f"size must be >= 2, got {size}")
        return cls(kind="gzip_bomb", size=size)

    @classmethod
    def html(cls, code: int = 502) -> Fault:
        """An HTML error page, as a proxy/load balancer in front would send."""
        title = f"{code} {_reason(code)}"
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        return cls(kind="html", code=code, body=page.encode("utf-8"), content_type="text/html")


@dataclass(frozen=True)
class _Answer:
    """A pre-serialised answer; bytes are built once when configured."""

    code: int
    body: bytes
    content_type: str = _JSON
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Plan:
    """What one request should get, decided under the lock in one go."""

    authorized: bool
    routed: bool
    fault: Fault | None
    answer: _Answer | None


class _Server(ThreadingHTTPServer):
    """Threaded HTTP server tuned for benchmarks and for clean shutdown."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], standin: StandIn) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.standin = standin
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup that can
        # stall for seconds in sandboxes; we never need the name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def drop_connections(self) -> None:
        """Close idle keep-alive connections, else clients keep talking after stop."""
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up (timeouts, RST tests) are expected; stay quiet.
        logger.debug("stand-in: error serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Per-connection handler; writes each answer with a single sendall."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # StreamRequestHandler.setup sets TCP_NODELAY
    server: _Server
    server_version = "thulium-standin"
    sys_version = ""

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # here, so a slow or failed one blocks no other client
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("stand-in: " + format, *args)

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    # -- request handling -------------------------------------------------

    def _serve(self) -> None:
        standin = self.server.standin
        self._drain_request_body()
        campaign: str | None = None
        if self.command == "GET":
            path = urlsplit(self.path).path
            match = _ROUTE.match(path)
            if match:
                campaign = unquote(match.group(1))
            elif _STATS_ROUTE.match(path):
                campaign = STATS
        plan = standin._plan(campaign, self._header_dict())
        latency = standin.latency
        if latency > 0:
            time.sleep(latency)
        request_id = uuid.uuid4().hex
        try:
            self._execute(plan, request_id)
        except OSError:
            # Client went away (e.g. read timeout during a delay fault).
            self.close_connection = True
            logger.debug("stand-in: client gone during answer", exc_info=True)

    def _execute(self, plan: _Plan, rid: str) -> None:
        if not plan.authorized:
            self._send(
                401,
                _error_body(rid, "Unauthorized", 401),
                rid,
                headers=(("WWW-Authenticate", 'Basic realm="thulium"'),),
            )
            return
        if not plan.routed:
            self._send(404, _error_body(rid, "Not found", 404), rid)
            return
        fault = plan.fault
        if fault is None or fault.kind == "delay":
            if fault is not None:
                time.sleep(fault.seconds)
            self._send_normal(plan.answer, rid)
        elif fault.kind == "interim":
            self.wfile.write(
                f"HTTP/1.1 {fault.code} {_reason(fault.code)}\r\n"
                "Link: </style.css>; rel=preload; as=style\r\n\r\n".encode("latin-1")
            )
            time.sleep(fault.seconds)
            self._send_normal(plan.answer, rid)
        elif fault.kind == "trickle":
            self._trickle(plan.answer, rid, fault)
        elif fault.kind == "endless":
            self._endless(rid)
        elif fault.kind == "gzip_bomb":
            self._send(200, _gzip_bomb(fault.size), rid, headers=(("Content-Encoding", "gzip"),))
        elif fault.kind == "reset":
            self._reset()
        elif fault.kind == "truncated":
            full = plan.answer.body if plan.answer is not None else b"[]"
            ctype = plan.answer.content_type if plan.answer is not None else _JSON
            head = self._head(200, len(full), ctype, rid, ())
            self.wfile.write(head + full[: len(full) // 2])
            self.close_connection = True
        else:
            body = fault.body
            if body is None:
                body = (
                    _error_body(rid, _reason(fault.code), fault.code) if fault.code >= 400 else b""
                )
            self._send(
                fault.code,
                body,
                rid,
                ctype=fault.content_type,
                headers=fault.headers,
                reason=fault.reason,
            )

    def _trickle(self, answer: _Answer | None, rid: str, fault: Fault) -> None:
        """Send the answer a byte at a time until it is out or the client hangs up."""
        body = answer.body if answer is not None else b"[]"
        head = self._head(200, len(body), _JSON, rid, ())
        data = body if fault.headers_first else head + body
        if fault.headers_first:
            self.wfile.write(head)
        self.close_connection = True
        for index in range(len(data)):
            time.sleep(fault.seconds)
            self.wfile.write(data[index : index + 1])

    def _endless(self, rid: str) -> None:
        """A chunked 200 that goes on until the client hangs up (a broken proxy, say)."""
        item = b'{"status_id": "1", "system_status": "CALL", "dictionary_status_id": null, '
        chunk = b"[" + (item + b'"name": "x"}, ') * 1000
        lines = [
            "HTTP/1.1 200 OK",
            f"Content-Type: {_JSON}",
            "Transfer-Encoding: chunked",
            f"X-Request-Id: {rid}",
            "Connection: close",
            "\r\n",
        ]
        self.close_connection = True
        self.wfile.write("\r\n".join(lines).encode("latin-1"))
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        while True:
            self.wfile.write(framed)

    def _send_normal(self, answer: _Answer | None, rid: str) -> None:
        if answer is None:
            self._send(404, _error_body(rid, "Campaign not found", 404), rid)
        else:
            self._send(
                answer.code,
                answer.body,
                rid,
                ctype=answer.content_type,
                headers=answer.headers,
            )

    def _send(
        self,
        code: int,
        body: bytes,
        rid: str,
        *,
        ctype: str = _JSON,
        headers: tuple[tuple[str, str], ...] = (),
        reason: str | None = None,
    ) -> None:
        if code in _NO_BODY_CODES or code < 200:
            body = b""
        head = self._head(code, len(body), ctype, rid, headers, reason=reason)
        # One write -> one sendall -> one segment for small answers (with NODELAY).
        self.wfile.write(head + body if self.command != "HEAD" else head)

    def _head(
        self,
        code: int,
        length: int,
        ctype: str,
        rid: str,
        headers: tuple[tuple[str, str], ...],
        *,
        reason: str | None = None,
    ) -> bytes:
        lines = [
            f"HTTP/1.1 {code} {_reason(code) if reason is None else reason}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {ctype}",
            f"Content-Length: {length}",
        ]
        if not any(name.lower() == "x-request-id" for name, _ in headers):
            lines.append(f"X-Request-Id: {rid}")
        lines.extend(f"{k}: {v}" for k, v in headers)
        if self.close_connection:
            lines.append("Connection: close")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1")

    def _reset(self) -> None:
        """RST: linger on with timeout 0, then really close the fd."""
        conn = self.connection
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
        self.close_connection = True
        # rfile holds a makefile() reference; close it first or close() is deferred.
        self.rfile.close()
        conn.close()

    def _drain_request_body(self) -> None:
        """Keep keep-alive framing intact if a client sends a body anyway."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return
        length = self.headers.get("Content-Length")
        if length:
            try:
                self.rfile.read(int(length))
            except ValueError:
                self.close_connection = True

    def _header_dict(self) -> dict[str, str]:
        # Title-Case names so lookups don't depend on how a client spells them.
        return {"-".join(p.capitalize() for p in k.split("-")): v for k, v in self.headers.items()}


class StandIn:
    """A controllable fake Thulium API on loopback.

    Configure per-campaign answers and faults, run the code under test against
    :attr:`url`, then inspect request counts and headers.
    """

    def __init__(
        self,
        *,
        user: str = "user",
        password: str = "secret",
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.user = user
        self.password = password
        #: Seconds slept before every answer; may be changed while serving.
        self.latency = latency
        self._host = host
        self._port = port
        self._tls = tls  # serve HTTPS with this server context
        self._lock = threading.Lock()
        self._answers: dict[str, _Answer] = {}
        self._sizes: dict[str, int] = {}  # statuses per campaign given by set_statuses
        self._queued: dict[str, deque[Fault]] = {}
        self._permanent: dict[str, Fault] = {}
        self._counts: dict[str, int] = {}
        self._total = 0
        self._arrivals: list[tuple[float, str | None]] = []
        self._last_headers: dict[str, dict[str, str]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> StandIn:
        """Bind and serve in a daemon thread; a no-op if already serving."""
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), self)
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        host, port = self._host, server.server_port
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if self._tls is not None else "http"
        self._url = f"{scheme}://{shown}:{port}/api"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"thulium-standin:{port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("stand-in serving %s", self._url)
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and close the socket; idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.drop_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        logger.debug("stand-in stopped %s", self._url)

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT/api``; valid after start()."""
        if self._url is None:
            raise RuntimeError("StandIn not started; call start() first")
        return self._url

    # -- configuration ----------------------------------------------------

    def set_statuses(self, campaign_id: str, statuses: list[dict[str, object]]) -> None:
        """Normal 200 answer; serialised once here, not per request."""
        body = json.dumps(statuses, ensure_ascii=False).encode("utf-8")
        with self._lock:
            self._answers[campaign_id] = _Answer(200, body)
            self._sizes[campaign_id] = len(statuses)

    def set_stats(self, active: list[dict[str, object]] | None) -> None:
        """The answer of ``GET /outbounds/stats`` (``[{"id", "records_count",
        "completion_percent"}, …]``); None: every campaign given statuses is active, with
        its number of statuses as records and 0% done."""
        with self._lock:
            if active is None:
                self._answers.pop(STATS, None)
            else:
                self._answers[STATS] = _Answer(200, json.dumps(active).encode("utf-8"))

    def set_body(
        self,
        campaign_id: str,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str = _JSON,
        headers: dict[str, str] | None = None,
    ) -> None:
        """A raw answer served every time (replaces statuses for the campaign)."""
        answer = _Answer(status, _to_bytes(body), content_type, tuple((headers or {}).items()))
        with self._lock:
            self._answers[campaign_id] = answer

    def remove(self, campaign_id: str) -> None:
        """Campaign no longer exists: answers become 404."""
        with self._lock:
            self._answers.pop(campaign_id, None)
            self._sizes.pop(campaign_id, None)

    def add_faults(self, campaign_id: str, *faults: Fault) -> None:
        """Queue faults; each request to the campaign consumes the next one."""
        with self._lock:
            self._queued.setdefault(campaign_id, deque()).extend(faults)

    def set_permanent_fault(self, campaign_id: str, fault: Fault | None) -> None:
        """Serve ``fault`` on every request (over the queue); None clears it."""
        with self._lock:
            if fault is None:
                self._permanent.pop(campaign_id, None)
            else:
                self._permanent[campaign_id] = fault

    # -- inspection -------------------------------------------------------

    def requests_for(self, campaign_id: str) -> int:
        """Requests to the campaign's statuses path, incl. 401s and faults."""
        with self._lock:
            return self._counts.get(campaign_id, 0)

    @property
    def total_requests(self) -> int:
        """All requests received, on any path."""
        with self._lock:
            return self._total

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._total = 0
            self._arrivals.clear()

    def arrivals(self) -> list[tuple[float, str | None]]:
        """``(time.monotonic(), campaign id or None)`` of every request, in arrival order."""
        with self._lock:
            return list(self._arrivals)

    def last_headers(self, campaign_id: str) -> dict[str, str]:
        """Headers of the last request to the campaign, names in Title-Case."""
        with self._lock:
            return dict(self._last_headers.get(campaign_id, {}))

    # -- used by the handler ------------------------------------------------

    def _authorized(self, value: str | None) -> bool:
        if not value:
            return False
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.user}:{self.password}"
        # RFC 7617 leaves the charset open; requests sends latin-1, others UTF-8.
        for charset in ("utf-8", "latin-1"):
            try:
                if hmac.compare_digest(given, expected.encode(charset)):
                    return True
            except UnicodeEncodeError:
                continue
        return False

    def _plan(self, campaign: str | None, headers: dict[str, str]) -> _Plan:
        """Count the request and pick its answer atomically (one lock round)."""
        authorized = self._authorized(headers.get("Authorization"))
        with self._lock:
            self._total += 1
            self._arrivals.append((time.monotonic(), campaign))
            if campaign is None:
                return _Plan(authorized, False, None, None)
            self._counts[campaign] = self._counts.get(campaign, 0) + 1
            self._last_headers[campaign] = headers
            fault: Fault | None = None
            if authorized:  # auth is checked before any fault is consumed
                fault = self._permanent.get(campaign)
                if fault is None:
                    queue = self._queued.get(campaign)
                    if queue:
                        fault = queue.popleft()
            answer = self._answers.get(campaign)
            if campaign == STATS and answer is None:
                answer = self._default_stats()
            return _Plan(authorized, True, fault, answer)

    def _default_stats(self) -> _Answer:
        active = [
            {"id": campaign_id, "records_count": size, "completion_percent": 0.0}
            for campaign_id, size in self._sizes.items()
            if campaign_id in self._answers
        ]
        return _Answer(200, json.dumps(active).encode("utf-8"))
