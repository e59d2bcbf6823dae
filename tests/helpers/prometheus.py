"""Reading what a run reported to Prometheus: a real Pushgateway, the textfile format, and
a loopback server that answers a push the way a broken Pushgateway or proxy would."""

from __future__ import annotations

import contextlib
import itertools
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.deploy import require

Labels = frozenset[tuple[str, str]]


def series(text: str) -> dict[tuple[str, Labels], float]:
    """Every sample of an exposition text: (name, labels) → value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, Labels], float], name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def promtool_accepts(path: Path) -> None:
    """``promtool check metrics``: the exposition is one Prometheus can ingest."""
    done = subprocess.run(
        [require("promtool"), "check", "metrics"],
        input=path.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@dataclass
class Pushgateway:
    url: str

    def groups(self) -> dict[Labels, dict[tuple[str, Labels], float]]:
        """Every group pushed so far (its grouping labels → its samples), read back over the
        Pushgateway's HTTP API."""
        answer = requests.get(f"{self.url}/api/v1/metrics", timeout=5)
        answer.raise_for_status()
        found: dict[Labels, dict[tuple[str, Labels], float]] = {}
        for group in answer.json()["data"]:
            samples: dict[tuple[str, Labels], float] = {}
            for name, family in group.items():
                if not isinstance(family, dict) or "metrics" not in family:
                    continue
                for metric in family["metrics"]:
                    # An empty label is no label (the Pushgateway adds instance="").
                    labels = {k: v for k, v in metric.get("labels", {}).items() if v}
                    key = (name, frozenset(labels.items()))
                    samples[key] = float(metric.get("value", metric.get("count", "nan")))
            found[frozenset(group["labels"].items())] = samples
        return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def pushgateway() -> Iterator[Pushgateway]:
    """A Pushgateway of the test's own on loopback (Debian's prometheus-pushgateway), empty:
    its persistence file (Debian's default is shared) lives and dies with it."""
    port = _free_port()
    state = tempfile.TemporaryDirectory(prefix="pushgateway-")
    proc = subprocess.Popen(
        [
            require("prometheus-pushgateway"),
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={state.name}/pushgateway.data",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None, "the Pushgateway exited at start"
            assert time.monotonic() < deadline, "the Pushgateway did not become ready"
            time.sleep(0.05)
        yield Pushgateway(url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        state.cleanup()


# -- a Pushgateway, or a proxy before one, that misbehaves ----------------------------------

Answer = Callable[[BaseHTTPRequestHandler, threading.Event], None]


@dataclass(frozen=True)
class Asked:
    method: str
    path: str
    authorization: str | None


@dataclass
class BrokenGateway:
    """A loopback server answering every request with ``answer``, and what it was asked."""

    url: str
    asked: list[Asked] = field(default_factory=list)  # in order
    pushed: threading.Event = field(default_factory=threading.Event)  # a push has arrived


@contextlib.contextmanager
def broken_gateway(answer: Answer) -> Iterator[BrokenGateway]:
    """Serve ``answer(request, closing)`` on loopback until the block ends (``closing`` is
    set then, for an answer that takes its time)."""
    closing = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def serve(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            gateway.asked.append(Asked(self.command, self.path, self.headers.get("Authorization")))
            if self.command in ("POST", "PUT"):
                gateway.pushed.set()
            answer(self, closing)

        do_GET = do_POST = do_PUT = serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    gateway = BrokenGateway(f"http://127.0.0.1:{server.server_address[1]}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield gateway
    finally:
        closing.set()
        server.shutdown()
        server.server_close()


def trickle(request: BaseHTTPRequestHandler, closing: threading.Event) -> None:
    """An answer whose headers never end: one byte every 2 s (for two minutes at most)."""
    endless = itertools.chain(b"HTTP/1.1 200 OK\r\nX-Slow: ", itertools.repeat(ord("a")))
    for byte in itertools.islice(endless, 60):
        request.wfile.write(bytes([byte]))
        request.wfile.flush()
        if closing.wait(2):
            return


def redirect(code: int) -> Answer:
    """A push redirected elsewhere (``code``, to ``/elsewhere``), where any GET gets a 200."""

    def answer(request: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        if request.command == "GET":
            request.send_response(200)
        else:
            request.send_response(code)
            request.send_header("Location", "/elsewhere")
        request.send_header("Content-Length", "0")
        request.end_headers()

    return answer
