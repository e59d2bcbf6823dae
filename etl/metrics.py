"""Prometheus metrics of a sync, the way a batch job reports them: at the end of every run.

The metrics are built with prometheus-client in a registry of the run's own, then written in
the node_exporter textfile format (``generate_latest``, written atomically, readable by all)
and/or pushed to a Pushgateway (``pushadd_to_gateway``, grouped by job and shard, no instance
label). Names follow Prometheus's rules: base units, ``_seconds``. Every figure is the last
run's, so every one is a gauge: a counter replaced by each run's own count would read as a
counter reset to ``rate()`` and ``increase()``.

``thulium_etl_last_success_timestamp_seconds`` comes from the run history (the last
succeeded run of the same shard), so a failed run never moves it. When the database cannot
say, it is left out: a push then leaves the Pushgateway's value alone (POST replaces only the
metrics it carries), and a textfile keeps the value of the file it replaces.

Reporting is best effort: a failed push or write is logged and never changes the run's
outcome or exit code.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping
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

logger = logging.getLogger(__name__)

JOB = "thulium-etl"
LAST_SUCCESS = "thulium_etl_last_success_timestamp_seconds"
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
    gauge(
        "thulium_etl_last_run_http_retries",
        "HTTP requests made again after a transient failure in the last sync run",
        report.http.retries,
    )
    build = Info("thulium_etl_build", "The thulium-etl version that ran", names, registry=reg)
    _series(build, labels).info({"version": __version__})
    return reg


M = TypeVar("M", Gauge, Info)


def _series(metric: M, labels: Mapping[str, str]) -> M:
    """The metric's one series: with ``labels`` when it has label names, else itself."""
    return metric.labels(**labels) if labels else metric


def export(settings: MetricsSettings, report: RunReport) -> None:
    """Write and/or push the run's metrics, as configured; never raises."""
    shard = {"shard": str(report.shard)} if report.shard else {}
    if settings.file:
        try:
            _write_textfile(Path(settings.file), report, labels={"job": JOB, **shard})
            logger.info("metrics written to %s", settings.file)
        except (OSError, ValueError) as exc:
            logger.warning("could not write the metrics to %s: %s", settings.file, exc)
    if settings.pushgateway_url:
        try:
            pushadd_to_gateway(
                settings.pushgateway_url,
                job=JOB,
                registry=registry(report, labels={}),
                grouping_key=shard,
                timeout=10,
            )
            logger.info("metrics pushed to %s", settings.pushgateway_url)
        except Exception as exc:  # urllib's errors, a refused connection, a proxy's page
            logger.warning("could not push the metrics to %s: %s", settings.pushgateway_url, exc)


def _write_textfile(path: Path, report: RunReport, *, labels: Mapping[str, str]) -> None:
    if report.last_success is None:
        report = _with_previous_success(path, report)
    _replace(path, generate_latest(registry(report, labels=labels)))


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


def _with_previous_success(path: Path, report: RunReport) -> RunReport:
    """The report with the last success the file it replaces recorded, if any."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return report
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == LAST_SUCCESS:
                return dataclasses.replace(report, last_success=sample.value)
    return report
