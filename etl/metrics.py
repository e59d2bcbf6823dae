"""Prometheus metrics of a sync, the way a batch job reports them: at the end of every run.

The metrics are built with prometheus-client in a registry of the run's own, then written in
the node_exporter textfile format (``generate_latest``, written atomically, readable by all)
and/or pushed to a Pushgateway (``pushadd_to_gateway``, grouped by job, shard and schema, no
instance label: :meth:`~etl.outcomes.RunReport.grouping`). Names follow Prometheus's rules:
base units, ``_seconds``. Every figure is the last run's, so every one is a gauge: a counter
replaced by each run's own count would read as a counter reset to ``rate()`` and
``increase()``.

``thulium_etl_last_success_timestamp_seconds`` comes from the run history (the last
succeeded run of the same shard), so a failed run never moves it. When the database cannot
say, it is left out: a push then leaves the Pushgateway's value alone (POST replaces only the
metrics it carries), and a textfile keeps the value of the file it replaces.

Reporting is best effort, and bounded: a failed push or write is logged and never changes the
run's outcome or exit code, and the textfile and the push together get :data:`REPORT_DEADLINE`
seconds. Each runs on a daemon thread of its own, which the job leaves behind when the deadline
passes or a stop is requested (SIGTERM/SIGINT) while it waits, and which never keeps the process
alive: nothing that blocks inside urllib or ``open()`` (a Pushgateway that trickles its answer
a byte at a time, a FIFO) can hold a finished job. A push is an HTTP POST that follows no
redirect (urllib would re-send it as a body-less GET, and a proxy's page would read as a
success) and counts anything but a 2xx as a failure.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import stat
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Info,
    generate_latest,
    pushadd_to_gateway,
)
from prometheus_client.parser import text_string_to_metric_families

from etl import __version__
from etl.config import MetricsSettings
from etl.outcomes import CampaignOutcome, RunOutcome, RunReport
from etl.stop import Stop

logger = logging.getLogger(__name__)

JOB = "thulium-etl"
LAST_SUCCESS = "thulium_etl_last_success_timestamp_seconds"
#: Seconds the end of a run may spend reporting, the textfile and the push together.
REPORT_DEADLINE = 10.0
_REPORTED_OUTCOMES = (
    RunOutcome.SUCCEEDED,
    RunOutcome.PARTIAL,
    RunOutcome.FAILED,
    RunOutcome.INTERRUPTED,
)


def registry(report: RunReport, *, labels: Mapping[str, str]) -> CollectorRegistry:
    """The run's metrics, every series carrying ``labels`` as well as its own."""
    names = tuple(labels)
    reg = CollectorRegistry(auto_describe=True)

    def gauge(name: str, doc: str, value: float) -> None:
        _series(Gauge(name, doc, names, registry=reg), labels).set(value)

    def gauges(name: str, doc: str, label: str, values: Iterable[tuple[str, float]]) -> None:
        family = Gauge(name, doc, (*names, label), registry=reg)
        for word, value in values:
            family.labels(**labels, **{label: word}).set(value)

    gauge(
        "thulium_etl_last_run_timestamp_seconds",
        "When the last sync run finished",
        report.finished_at,
    )
    gauge(
        "thulium_etl_run_duration_seconds",
        "How long the last sync run took, start to end",
        report.duration,
    )
    if report.last_success is not None:
        gauge(LAST_SUCCESS, "When the last successful sync run finished", report.last_success)
    gauges(
        "thulium_etl_last_run_outcome",
        "1 for the last sync run's outcome, 0 for the others",
        "outcome",
        ((str(candidate), candidate is report.outcome) for candidate in _REPORTED_OUTCOMES),
    )
    _counts(report, gauges)
    gauge(
        "thulium_etl_last_run_http_retries",
        "HTTP requests made again after a transient failure in the last sync run",
        report.http.retries,
    )
    build = Info("thulium_etl_build", "The thulium-etl version that ran", names, registry=reg)
    _series(build, labels).info({"version": __version__})
    return reg


_Gauges = Callable[[str, str, str, Iterable[tuple[str, float]]], None]


def _counts(report: RunReport, gauges: _Gauges) -> None:
    """The run's campaigns by outcome, rows by change and requests by HTTP status."""
    t = report.totals
    gauges(
        "thulium_etl_last_run_campaigns",
        "Campaigns of the last sync run, by outcome",
        "outcome",
        (
            (str(CampaignOutcome.SUCCEEDED), t.campaigns_ok),
            (str(CampaignOutcome.FAILED), t.campaigns_failed),
            (str(CampaignOutcome.SKIPPED), t.campaigns_skipped),
        ),
    )
    gauges(
        "thulium_etl_last_run_rows",
        "Rows of statuses the last sync run changed, by change",
        "change",
        (("inserted", t.rows_inserted), ("updated", t.rows_updated), ("deleted", t.rows_deleted)),
    )
    gauges(
        "thulium_etl_last_run_http_requests",
        "HTTP requests to the Thulium API in the last sync run, by status code (none: no "
        "answer at all)",
        "code",
        sorted(report.http.by_status.items()),
    )


M = TypeVar("M", Gauge, Info)


def _series(metric: M, labels: Mapping[str, str]) -> M:
    """The metric's one series: with ``labels`` when it has label names, else itself."""
    return metric.labels(**labels) if labels else metric


def export(settings: MetricsSettings, report: RunReport, *, stop: Stop) -> None:
    """Write and/or push the run's metrics, as configured; never raises, and returns within
    :data:`REPORT_DEADLINE` seconds, at once if ``stop`` is requested meanwhile."""
    grouping = report.grouping()
    tasks = []
    if settings.file:
        path = Path(settings.file)
        labels = {"job": JOB, **grouping}
        tasks.append(
            _Task(
                what=f"write the metrics to {settings.file}",
                done=f"metrics written to {settings.file}",
                work=partial(_write_textfile, path, report, labels=labels),
            )
        )
    if settings.pushgateway_url:
        tasks.append(
            _Task(
                what=f"push the metrics to {settings.pushgateway_url}",
                done=f"metrics pushed to {settings.pushgateway_url}",
                work=partial(
                    pushadd_to_gateway,
                    settings.pushgateway_url,
                    job=JOB,
                    registry=registry(report, labels={}),
                    grouping_key=grouping,
                    timeout=REPORT_DEADLINE,
                    handler=_handler(settings.pushgateway_url, settings.pushgateway_auth),
                ),
            )
        )
    _run_within_deadline(tasks, stop=stop)


@dataclass(frozen=True, kw_only=True)
class _Task:
    """One way of reporting: what it does, for a warning, and what it did, for the log."""

    what: str
    done: str
    work: Callable[[], None]


def _run_within_deadline(tasks: Sequence[_Task], *, stop: Stop) -> None:
    """Run ``tasks`` side by side on daemon threads and log how each ended: one line each,
    written here, so a task left behind never logs after the job has moved on."""
    ended: queue.SimpleQueue[tuple[_Task, Exception | None] | None] = queue.SimpleQueue()

    def run(task: _Task) -> None:
        try:
            task.work()
        except Exception as exc:  # urllib's errors, a refused connection, a full disk
            ended.put((task, exc))
        else:
            ended.put((task, None))

    pending = list(tasks)
    # After a stop, what is left of the stop's own deadline, with a second to spare.
    seconds = min(REPORT_DEADLINE, stop.time_left() - 1) if stop.is_set() else REPORT_DEADLINE
    seconds = max(0.0, seconds)
    why = "the job was stopped before it was done"
    # A stop (a further one, for a run already interrupted), or the deadline, ends the wait.
    started = time.monotonic()
    with stop.cancelling(partial(ended.put, None), within=seconds):
        for task in tasks:
            threading.Thread(target=run, args=(task,), name="metrics", daemon=True).start()
        while pending and (item := _next(ended, until=started + seconds + 1)) is not None:
            task, error = item
            pending.remove(task)
            if error is None:
                logger.info("%s", task.done)
            else:
                logger.warning("could not %s: %s", task.what, error)
        if pending and time.monotonic() - started >= seconds:
            why = f"not done within {seconds:g} s, the deadline for reporting"
    for task in pending:
        logger.warning("could not %s: %s", task.what, why)


T = TypeVar("T")


def _next(ended: queue.SimpleQueue[T | None], *, until: float) -> T | None:
    """The next item, or None past ``until`` (the stop's clock ends the wait before that;
    this bound holds if it cannot)."""
    try:
        return ended.get(timeout=max(0.0, until - time.monotonic()))
    except queue.Empty:
        return None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Every redirect is an error (urllib's HTTPError, as any answer but a 2xx is): followed,
    a push would be re-sent as a body-less GET, whose 200 would read as a success."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_Send = Callable[[str, str, float | None, list[tuple[str, str]], bytes], Callable[[], None]]


def _handler(gateway: str, auth: tuple[str, str] | None) -> _Send:
    """prometheus-client's ``handler`` for the Pushgateway at ``gateway``: urllib with no
    redirects, and Basic auth if given (sent with the first request, UTF-8 as RFC 7617 says)."""
    passwords = urllib.request.HTTPPasswordMgrWithPriorAuth()
    if auth:
        passwords.add_password(None, gateway, *auth, is_authenticated=True)
    opener = urllib.request.build_opener(
        _NoRedirects, urllib.request.HTTPBasicAuthHandler(passwords)
    )

    def handler(
        url: str,
        method: str,
        timeout: float | None,
        headers: list[tuple[str, str]],
        data: bytes,
    ) -> Callable[[], None]:
        def send() -> None:
            request = urllib.request.Request(url, data=data, headers=dict(headers), method=method)
            with opener.open(request, timeout=timeout):
                pass

        return send

    return handler


def _write_textfile(path: Path, report: RunReport, *, labels: Mapping[str, str]) -> None:
    if path.exists() and not path.is_file():  # stat() alone: it never blocks
        raise ValueError("it is not a regular file")
    if report.last_success is None:
        report = _with_previous_success(_previous_text(path), report)
    _replace(path, generate_latest(registry(report, labels=labels)))


def _previous_text(path: Path) -> str:
    """The text of the file a run replaces; "" if there is none, or it is not a regular
    file, or cannot be read: then it is simply replaced. Opened without blocking: a FIFO
    with no writer would otherwise hold ``open()`` for good."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return ""
    with open(fd, encoding="utf-8") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        try:
            return f.read()
        except (OSError, UnicodeDecodeError):
            return ""


def _replace(path: Path, content: bytes) -> None:
    """Write ``path`` atomically (a temporary file renamed over it; the textfile collector
    reads only ``*.prom``) and readable by all: node_exporter runs as a user of its own, and
    the systemd unit's umask is 0077."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # os.open's mode is masked by the umask
            f.write(content)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _with_previous_success(previous: str, report: RunReport) -> RunReport:
    """The report with the last success the file it replaces recorded, if any (a file that
    does not parse recorded none)."""
    try:
        for family in text_string_to_metric_families(previous):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS:
                    return dataclasses.replace(report, last_success=sample.value)
    except ValueError:
        pass
    return report
