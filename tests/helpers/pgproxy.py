"""TCP proxies in front of Postgres that misbehave at the worst moment of a transaction.

They read both directions message by message (PostgreSQL's wire protocol: an untyped startup
message, then a type byte and a length per message), and each decides what happens to a
message: :class:`CommitAckLoss` loses a connection after the server received a COMMIT and
before the client heard that it committed; :class:`CopyStall` holds the first COPY's data,
so the client waits in the middle of a COPY until the server ends it (a cancel, say);
:class:`Silence` stops forwarding anything, on every connection, when told to.
Clients must not use TLS (``sslmode=disable``), or a proxy could not read them, and must
send their SQL's text (the job does: it never uses server-side prepared statements).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.engine import URL

from tests.helpers.databases import unix_socket

_QUERY_TYPES = (b"Q", b"P")  # a simple query; the Parse of an extended one
_COPY_DATA = b"d"
_ERROR = b"E"
_READY_FOR_QUERY = b"Z"

P = TypeVar("P", bound="_Proxy")


@dataclass
class _Link:
    """One client's connection through the proxy, as both of its pumps see it."""

    armed: bool = False  # CommitAckLoss: the transaction sent the marker
    swallow: threading.Event = field(default_factory=threading.Event)
    refused: threading.Event = field(default_factory=threading.Event)  # the server sent an error


class _Cut(Exception):
    """Close both sides of the link now."""


class _Proxy:
    """Accepts on loopback and pumps each client to Postgres and back, asking the subclass
    what to do with each message."""

    def __init__(self, upstream: URL) -> None:
        self._upstream = unix_socket(upstream) or (
            upstream.host or "127.0.0.1",
            upstream.port or 5432,
        )
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        # Clients reach the proxy over TCP whatever the server's URL said: a ?host= (the
        # embedded Postgres's socket directory) would send them past it, to the server itself.
        self.url = (
            upstream.difference_update_query(["host"])
            .set(host="127.0.0.1", port=port)
            .update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
        )
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def serve(self) -> None:
        self._acceptor.start()

    def close(self) -> None:
        """Stop accepting and cut every connection still open."""
        self.closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def startup(self, message: bytes) -> bytes:
        """The client's startup message (protocol version, then parameters) as forwarded."""
        return message

    def from_client(self, kind: bytes, message: bytes, link: _Link) -> None:
        """Called before a client's message is forwarded; may wait, or raise :class:`_Cut`."""

    def from_server(self, kind: bytes, message: bytes, link: _Link) -> bool:
        """Whether to forward a server's message; may raise :class:`_Cut`."""
        return True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = _connect(self._upstream)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets += [client, server]
            link = _Link()
            for pump in (self._frontend, self._backend):
                threading.Thread(target=pump, args=(client, server, link), daemon=True).start()

    def _frontend(self, client: socket.socket, server: socket.socket, link: _Link) -> None:
        try:
            length = struct.unpack("!I", _read(client, 4))[0]
            startup = self.startup(_read(client, length - 4))
            server.sendall(struct.pack("!I", len(startup) + 4) + startup)
            while True:
                kind, message = _message(client)
                self.from_client(kind, message, link)
                server.sendall(message)
        except (OSError, _Cut):
            pass
        finally:
            _close(client)
            _close(server)

    def _backend(self, client: socket.socket, server: socket.socket, link: _Link) -> None:
        try:
            while True:
                kind, message = _message(server)
                if self.from_server(kind, message, link):
                    client.sendall(message)
        except (OSError, _Cut):
            pass
        finally:
            _close(client)
            _close(server)


class CommitAckLoss(_Proxy):
    """Once, when a transaction that sent ``marker`` in a query's text commits: forwards the
    ``COMMIT``, drops the server's answer up to its ReadyForQuery (so the commit is done) and
    closes both sides. The client sees a lost connection; the data is committed."""

    def __init__(self, upstream: URL, *, marker: bytes) -> None:
        super().__init__(upstream)
        self._marker = marker
        self._used = False
        self.fired = threading.Event()  # set once a COMMIT's answer was swallowed

    def from_client(self, kind: bytes, message: bytes, link: _Link) -> None:
        body = message[5:]
        command = body.lstrip()[:8].upper() if kind == b"Q" else b""
        if kind in _QUERY_TYPES and self._marker in body:
            link.armed = True
        elif command.startswith(b"ROLLBACK"):
            link.armed = False
        elif command.startswith(b"COMMIT"):
            if link.armed and self._take():
                link.swallow.set()
            link.armed = False

    def from_server(self, kind: bytes, message: bytes, link: _Link) -> bool:
        if not link.swallow.is_set():
            return True
        if kind == _READY_FOR_QUERY:
            self.fired.set()
            raise _Cut
        return False

    def _take(self) -> bool:
        with self._lock:
            used, self._used = self._used, True
            return not used


class CopyStall(_Proxy):
    """Holds the first COPY's first data message until the server ends that COPY with an
    error (a cancel, a terminated backend) or the proxy closes; then lets everything through.
    ``stalled`` is set once the client is stuck in the middle of its COPY."""

    def __init__(self, upstream: URL) -> None:
        super().__init__(upstream)
        self.stalled = threading.Event()

    def from_client(self, kind: bytes, message: bytes, link: _Link) -> None:
        if kind != _COPY_DATA:
            return
        with self._lock:
            if self.stalled.is_set():
                return
            self.stalled.set()
        while not (link.refused.wait(0.05) or self.closed.is_set()):
            pass

    def from_server(self, kind: bytes, message: bytes, link: _Link) -> bool:
        if kind == _ERROR:
            link.refused.set()
        return True


def _connect(address: tuple[str, int] | str) -> socket.socket:
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.settimeout(10)
            sock.connect(address)
        except OSError:
            sock.close()
            raise
    else:
        sock = socket.create_connection(address, timeout=10)
    sock.settimeout(None)
    return sock


class DropsOptions(_Proxy):
    """Forwards a connection's startup parameters but ``options``, as a pooler does that
    ignores it (PgBouncer's ``ignore_startup_parameters = options``): the server never sees
    the client's ``-c`` settings."""

    def startup(self, message: bytes) -> bytes:
        version, fields = message[:4], message[4:].split(b"\0")
        pairs = list(zip(fields[0::2], fields[1::2], strict=False))
        kept = [(k, v) for k, v in pairs if k and k != b"options"]
        return version + b"".join(k + b"\0" + v + b"\0" for k, v in kept) + b"\0"


class Silence(_Proxy):
    """Once ``silent`` is set, forwards nothing more from any client, until the proxy closes:
    a database that stopped answering, with every connection still open."""

    def __init__(self, upstream: URL) -> None:
        super().__init__(upstream)
        self.silent = threading.Event()

    def from_client(self, kind: bytes, message: bytes, link: _Link) -> None:
        while self.silent.is_set() and not self.closed.wait(0.05):
            pass


def _read(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("peer closed")
        data += chunk
    return bytes(data)


def _message(sock: socket.socket) -> tuple[bytes, bytes]:
    """One typed message: its type byte, and the whole message as it came."""
    head = _read(sock, 5)
    return head[:1], head + _read(sock, struct.unpack("!I", head[1:])[0] - 4)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@contextlib.contextmanager
def serving(proxy: P) -> Iterator[P]:
    """Run ``proxy`` for the block, and cut every connection through it at the end."""
    proxy.serve()
    try:
        yield proxy
    finally:
        proxy.close()
