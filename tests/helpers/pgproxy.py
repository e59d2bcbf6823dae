"""A TCP proxy in front of Postgres that loses a connection at the worst moment: after the
server has received a COMMIT, before the client hears that it committed.

It reads the frontend's messages (PostgreSQL's wire protocol: an untyped startup message,
then a type byte and a length per message) and, once, forwards a transaction's ``COMMIT``
when the transaction sent ``marker`` in a query, waits for the server's answer and closes
both sides instead of passing it on. The client sees a lost connection; the data is
committed. Clients must not use TLS (``sslmode=disable``), or the proxy could not read them.
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
        self.url = upstream.set(
            host="127.0.0.1", port=self._listener.getsockname()[1]
        ).update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
        self.fired = threading.Event()  # set once a COMMIT's answer was swallowed
        self._lock = threading.Lock()
        self._used = False

    def serve(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            swallow = threading.Event()
            threading.Thread(
                target=self._frontend, args=(client, server, swallow), daemon=True
            ).start()
            threading.Thread(
                target=self._backend, args=(server, client, swallow), daemon=True
            ).start()

    def _frontend(
        self, client: socket.socket, server: socket.socket, swallow: threading.Event
    ) -> None:
        """Client to server, message by message, arming on the marker and firing on COMMIT."""
        with contextlib.suppress(OSError):
            length = struct.unpack("!I", _read(client, 4))[0]
            server.sendall(struct.pack("!I", length) + _read(client, length - 4))
            armed = False
            while True:
                head = _read(client, 5)
                body = _read(client, struct.unpack("!I", head[1:])[0] - 4)
                kind = head[:1]
                if kind in _QUERY_TYPES and self._marker in body:
                    armed = True
                if kind == b"Q" and body.lstrip().upper().startswith(b"COMMIT"):
                    if armed and self._take():
                        swallow.set()
                    armed = False
                server.sendall(head + body)

    def _backend(
        self, server: socket.socket, client: socket.socket, swallow: threading.Event
    ) -> None:
        """Server to client; once told to swallow, the next answer closes both sides."""
        with contextlib.suppress(OSError):
            while chunk := server.recv(65536):
                if swallow.is_set():
                    self.fired.set()
                    break
                client.sendall(chunk)
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

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


@contextlib.contextmanager
def losing_a_commit_ack(upstream: URL, *, marker: bytes) -> Iterator[CommitAckLoss]:
    proxy = CommitAckLoss(upstream, marker=marker)
    proxy.serve()
    try:
        yield proxy
    finally:
        proxy.close()
