"""Reading what a run reported to Prometheus: a real Pushgateway, and the textfile format."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
