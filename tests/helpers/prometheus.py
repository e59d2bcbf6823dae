"""Reading what a run reported to Prometheus: a real Pushgateway, the textfile format, and
a loopback server that answers a push the way a broken Pushgateway or proxy would."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bcrypt
import requests
from prometheus_client.parser import text_string_to_metric_families
from requests.auth import HTTPBasicAuth

from tests.helpers.deploy import require

Labels = frozenset[tuple[str, str]]

#: The user and password of a Pushgateway that requires them (distinctive, to be grepped for;
#: not ASCII, since it goes as UTF-8).
GATEWAY_AUTH = ("etl-pusher", "push-Pa55-żubr")


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
    auth: tuple[str, str] | None = None  # the user and password it requires, if any

    def groups(self) -> dict[Labels, dict[tuple[str, Labels], float]]:
        """Every group pushed so far (its grouping labels → its samples), read back over the
        Pushgateway's HTTP API."""
        answer = requests.get(f"{self.url}/api/v1/metrics", auth=_utf8(self.auth), timeout=5)
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


def _utf8(auth: tuple[str, str] | None) -> HTTPBasicAuth | None:
    """Basic auth as the Pushgateway reads it (requests would encode it as Latin-1)."""
    return HTTPBasicAuth(auth[0].encode(), auth[1].encode()) if auth else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def pushgateway(*, auth: tuple[str, str] | None = None) -> Iterator[Pushgateway]:
    """A Pushgateway of the test's own on loopback (Debian's prometheus-pushgateway), empty:
    its persistence file (Debian's default is shared) lives and dies with it. With ``auth``
    (a user and password) it requires HTTP Basic auth, through a web config file."""
    port = _free_port()
    state = tempfile.TemporaryDirectory(prefix="pushgateway-")
    options = [
        f"--web.listen-address=127.0.0.1:{port}",
        f"--persistence.file={state.name}/pushgateway.data",
    ]
    if auth:
        user, password = auth
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        web_config = Path(state.name, "web.yml")
        web_config.write_text(json.dumps({"basic_auth_users": {user: hashed}}))  # YAML too
        options.append(f"--web.config.file={web_config}")
    proc = subprocess.Popen(
        [require("prometheus-pushgateway"), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(requests.RequestException):
                ready = requests.get(f"{url}/-/ready", auth=_utf8(auth), timeout=1)
                if ready.status_code == 200:
                    break
            assert proc.poll() is None, "the Pushgateway exited at start"
            assert time.monotonic() < deadline, "the Pushgateway did not become ready"
            time.sleep(0.05)
        yield Pushgateway(url, auth)
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


def unauthorized(request: BaseHTTPRequestHandler, closing: threading.Event) -> None:
    """A refusal of the credentials sent, echoing them in the status line (as a careless
    proxy might) both as sent and decoded."""
    sent = request.headers.get("Authorization") or ""
    decoded = base64.b64decode(sent.removeprefix("Basic ")).decode(errors="replace")
    request.send_response(401, f"Unauthorized {sent} ({decoded})")
    request.send_header("WWW-Authenticate", 'Basic realm="pushgateway"')
    request.send_header("Content-Length", "0")
    request.end_headers()
