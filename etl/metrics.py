"""Prometheus metrics of a sync, the way a batch job reports them: at the end of every run.

The metrics are built with prometheus-client in a registry of the run's own, then written in
the node_exporter textfile format (atomically, by ``write_to_textfile``) and/or pushed to a
Pushgateway (``pushadd_to_gateway``, grouped by job and shard, no instance label). Names
follow Prometheus's rules: base units, ``_seconds``, ``_total``.

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
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    disable_created_metrics,
    pushadd_to_gateway,
    write_to_textfile,
)
from prometheus_client.parser import text_string_to_metric_families

from etl import __version__
from etl.config import MetricsSettings
from etl.outcomes import RunOutcome, RunReport

logger = logging.getLogger(__name__)

JOB = "thulium-etl"
LAST_SUCCESS = "thulium_etl_last_success_timestamp_seconds"
_REPORTED_OUTCOMES = (
    RunOutcome.SUCCEEDED,
    RunOutcome.PARTIAL,
    RunOutcome.FAILED,
    RunOutcome.INTERRUPTED,
)

disable_created_metrics()  # type: ignore[no-untyped-call]  # a run's counters: no *_created


def registry(report: RunReport, *, labels: Mapping[str, str]) -> CollectorRegistry:
    """The run's metrics, every series carrying ``labels`` as well as its own."""
    names = tuple(labels)
    reg = CollectorRegistry(auto_describe=True)

    def gauge(name: str, doc: str, value: float) -> None:
        _series(Gauge(name, doc, names, registry=reg), labels).set(value)

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
    outcome = Gauge(
        "thulium_etl_last_run_outcome",
        "1 for the last sync run's outcome, 0 for the others",
        (*names, "outcome"),
        registry=reg,
    )
    for candidate in _REPORTED_OUTCOMES:
        outcome.labels(**labels, outcome=str(candidate)).set(candidate is report.outcome)
    campaigns = Counter(
        "thulium_etl_campaigns",
        "Campaigns of the last sync run, by outcome",
        (*names, "outcome"),
        registry=reg,
    )
    rows = Counter(
        "thulium_etl_rows",
        "Rows of statuses the last sync run changed, by change",
        (*names, "change"),
        registry=reg,
    )
    t = report.totals
    for word, count in (
        ("succeeded", t.campaigns_ok),
        ("failed", t.campaigns_failed),
        ("skipped", t.campaigns_skipped),
    ):
        campaigns.labels(**labels, outcome=word).inc(count)
    for change, count in (
        ("inserted", t.rows_inserted),
        ("updated", t.rows_updated),
        ("deleted", t.rows_deleted),
    ):
        rows.labels(**labels, change=change).inc(count)
    requests = Counter(
        "thulium_etl_http_requests",
        "HTTP requests to the Thulium API in the last sync run, by status code (none: no "
        "answer at all)",
        (*names, "code"),
        registry=reg,
    )
    for code, count in sorted(report.http.by_status.items()):
        requests.labels(**labels, code=code).inc(count)
    retries = Counter(
        "thulium_etl_http_retries",
        "HTTP requests made again after a transient failure in the last sync run",
        names,
        registry=reg,
    )
    _series(retries, labels).inc(report.http.retries)
    build = Info("thulium_etl_build", "The thulium-etl version that ran", names, registry=reg)
    _series(build, labels).info({"version": __version__})
    return reg


M = TypeVar("M", Gauge, Counter, Info)


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
    write_to_textfile(str(path), registry(report, labels=labels))


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
