"""A TCP proxy in front of Postgres that loses a connection at the worst moment: after the
server has received a COMMIT, before the client hears that it committed.

It reads both directions message by message (PostgreSQL's wire protocol: an untyped startup
message, then a type byte and a length per message). Once, when a transaction that sent
``marker`` in a query's text commits, it forwards the ``COMMIT``, drops the server's answer
up to its ReadyForQuery (so the commit is done) and closes both sides. The client sees a lost
connection; the data is committed. Clients must not use TLS (``sslmode=disable``), or the
proxy could not read them, and must send their SQL's text (the job does: it never uses
server-side prepared statements).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

from sqlalchemy.engine import URL

_QUERY_TYPES = (b"Q", b"P")  # a simple query; the Parse of an extended one


class CommitAckLoss:
    def __init__(self, upstream: URL, *, marker: bytes) -> None:
        self._upstream = (upstream.host or "127.0.0.1", upstream.port or 5432)
        self._marker = marker
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        self.url = upstream.set(host="127.0.0.1", port=port).update_query_dict(
            {"sslmode": "disable", "gssencmode": "disable"}
        )
        self.fired = threading.Event()  # set once a COMMIT's answer was swallowed
        self._lock = threading.Lock()
        self._used = False
        self._sockets: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def serve(self) -> None:
        self._acceptor.start()

    def close(self) -> None:
        """Stop accepting and cut every connection still open."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets += [client, server]
            swallow = threading.Event()
            for pump in (self._frontend, self._backend):
                threading.Thread(target=pump, args=(client, server, swallow), daemon=True).start()

    def _frontend(
        self, client: socket.socket, server: socket.socket, swallow: threading.Event
    ) -> None:
        """Client to server, message by message: armed by the marker, fired by a COMMIT."""
        try:
            length = struct.unpack("!I", _read(client, 4))[0]
            server.sendall(struct.pack("!I", length) + _read(client, length - 4))
            armed = False
            while True:
                kind, message = _message(client)
                body = message[5:]
                command = body.lstrip()[:8].upper() if kind == b"Q" else b""
                if kind in _QUERY_TYPES and self._marker in body:
                    armed = True
                elif command.startswith(b"ROLLBACK"):
                    armed = False
                elif command.startswith(b"COMMIT"):
                    if armed and self._take():
                        swallow.set()
                    armed = False
                server.sendall(message)
        except OSError:
            pass
        finally:
            _close(client)
            _close(server)

    def _backend(
        self, client: socket.socket, server: socket.socket, swallow: threading.Event
    ) -> None:
        """Server to client; once told to swallow, drops the answer and closes both sides at
        its ReadyForQuery."""
        try:
            while True:
                kind, message = _message(server)
                if not swallow.is_set():
                    client.sendall(message)
                elif kind == b"Z":
                    self.fired.set()
                    return
        except OSError:
            pass
        finally:
            _close(client)
            _close(server)

    def _take(self) -> bool:
        with self._lock:
            used, self._used = self._used, True
            return not used


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
def losing_a_commit_ack(upstream: URL, *, marker: bytes) -> Iterator[CommitAckLoss]:
    proxy = CommitAckLoss(upstream, marker=marker)
    proxy.serve()
    try:
        yield proxy
    finally:
        proxy.close()
