"""Every sync reports Prometheus metrics for a batch job: a node_exporter textfile and/or a
real Pushgateway, read back here the way Prometheus would read them.

A failed run never moves the last-success timestamp, and a report that cannot be written or
pushed is logged and never changes the run's outcome or exit code. Reporting has a total
deadline, and a stop ends it at once: Pushgateways that trickle, redirect or refuse are
servers of the test's own on loopback.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import stat
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl import __version__
from etl.metrics import REPORT_DEADLINE
from standin import StandIn
from tests.helpers.cli import Result, exited, make_env, run_cli, spawn_cli
from tests.helpers.data import seed_campaigns, stored_statuses
from tests.helpers.prometheus import (
    GATEWAY_AUTH,
    Asked,
    Pushgateway,
    broken_gateway,
    promtool_accepts,
    redirect,
    series,
    trickle,
    unauthorized,
    value,
)

IDS = ["00001", "00002", "00404"]  # the stand-in serves two; 00404 is unknown to it (404)
JOB = {"job": "thulium-etl"}
OUTCOMES = ("succeeded", "partial", "failed", "interrupted")
UNREACHABLE_DB = "postgresql://etl@127.0.0.1:1/thulium"


def warnings(result: Result) -> list[str]:
    return [e["message"] for e in result.events() if e["level"] == "warning"]


def last_run_outcome(engine: Engine) -> str:
    with engine.connect() as conn:
        query = text("SELECT outcome FROM sync_runs ORDER BY run_id DESC LIMIT 1")
        return str(conn.execute(query).scalar_one())


def outcome_of(found: dict, **labels: str) -> str:  # type: ignore[type-arg]
    """The outcome whose one-hot series is 1, checking the others are 0."""
    ones = [
        o
        for o in OUTCOMES
        if value(found, "thulium_etl_last_run_outcome", **labels, outcome=o) == 1
    ]
    zeros = [
        o
        for o in OUTCOMES
        if value(found, "thulium_etl_last_run_outcome", **labels, outcome=o) == 0
    ]
    assert len(ones) == 1 and len(zeros) == len(OUTCOMES) - 1, found
    return ones[0]


def test_a_partial_run_writes_every_metric_to_the_textfile(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path
) -> None:
    seed_campaigns(api, IDS[:2], n=5)
    file = tmp_path / "thulium-etl.prom"
    started = time.time()

    result = run_cli("sync", env=make_env(api, db_url, IDS, THULIUM_METRICS_FILE=str(file)))

    assert result.code == 1, result.err
    promtool_accepts(file)
    found = series(file.read_text())
    assert all(dict(labels)["job"] == "thulium-etl" for _, labels in found), found
    assert outcome_of(found, **JOB) == "partial"
    for outcome, count in (("succeeded", 2), ("failed", 1), ("skipped", 0)):
        assert value(found, "thulium_etl_last_run_campaigns", **JOB, outcome=outcome) == count
    for change, count in (("inserted", 10), ("updated", 0), ("deleted", 0)):
        assert value(found, "thulium_etl_last_run_rows", **JOB, change=change) == count
    assert value(found, "thulium_etl_last_run_http_requests", **JOB, code="200") == 2
    assert value(found, "thulium_etl_last_run_http_requests", **JOB, code="404") == 1
    assert value(found, "thulium_etl_last_run_http_retries", **JOB) == 0
    assert value(found, "thulium_etl_build_info", **JOB, version=__version__) == 1
    finished = value(found, "thulium_etl_last_run_timestamp_seconds", **JOB)
    assert finished is not None and started <= finished <= time.time()
    duration = value(found, "thulium_etl_run_duration_seconds", **JOB)
    # (the job's clock against this test's: finished is the database's, at the close's start)
    assert duration is not None and 0 < duration <= time.time() - started
    assert value(found, "thulium_etl_last_success_timestamp_seconds", **JOB) is None  # none yet


def test_a_failed_run_never_moves_the_last_success_in_the_textfile(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path
) -> None:
    seed_campaigns(api, IDS[:2])
    file = tmp_path / "thulium-etl.prom"
    env = make_env(api, db_url, IDS[:2], THULIUM_METRICS_FILE=str(file))
    assert run_cli("sync", env=env).code == 0
    first = series(file.read_text())
    success = value(first, "thulium_etl_last_success_timestamp_seconds", **JOB)
    assert success == value(first, "thulium_etl_last_run_timestamp_seconds", **JOB)

    wrong = {"THULIUM_PASSWORD": "not-the-password", "THULIUM_CONCURRENCY": "1"}
    refused = run_cli("sync", env={**env, **wrong})
    after_refused = series(file.read_text())
    unreachable = run_cli("sync", env={**env, "DATABASE_URL": UNREACHABLE_DB})
    after_outage = series(file.read_text())

    assert (refused.code, unreachable.code) == (1, 3)
    for found in (after_refused, after_outage):
        assert outcome_of(found, **JOB) == "failed"
        assert value(found, "thulium_etl_last_success_timestamp_seconds", **JOB) == success
        last_run = value(found, "thulium_etl_last_run_timestamp_seconds", **JOB)
        assert last_run is not None and success is not None and last_run > success
    assert value(after_refused, "thulium_etl_last_run_http_requests", **JOB, code="401") == 1


def test_a_sharded_run_labels_every_series_with_its_shard(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path
) -> None:
    seed_campaigns(api, IDS[:2])
    file = tmp_path / "shard.prom"
    env = make_env(api, db_url, IDS[:2], THULIUM_METRICS_FILE=str(file), THULIUM_SHARD="1/2")

    assert run_cli("sync", env=env).code == 0

    found = series(file.read_text())
    assert found and all(dict(labels).get("shard") == "1/2" for _, labels in found), found
    assert outcome_of(found, **JOB, shard="1/2") == "succeeded"


def test_metrics_that_cannot_be_written_or_pushed_never_change_the_outcome(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    served = seed_campaigns(api, IDS[:2])
    env = make_env(
        api,
        db_url,
        IDS[:2],
        THULIUM_METRICS_FILE="/proc/self/thulium-etl.prom",  # a directory nothing can write to
        THULIUM_PUSHGATEWAY_URL="http://127.0.0.1:1",  # nothing listens
    )

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    assert all(stored_statuses(migrated, c) for c in served)
    warnings = [e["message"] for e in result.events() if e["level"] == "warning"]
    assert any("could not write the metrics to /proc/self/thulium-etl.prom" in w for w in warnings)
    assert any("could not push the metrics to http://127.0.0.1:1" in w for w in warnings)


@pytest.mark.parametrize(
    "garbage", [b"\xff\xfe not UTF-8", b"thulium_etl_last_run_timestamp_seconds not-a-number\n"]
)
def test_a_textfile_that_does_not_parse_is_replaced(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path, garbage: bytes
) -> None:
    seed_campaigns(api, IDS[:2])
    file = tmp_path / "thulium-etl.prom"
    file.write_bytes(garbage)  # a disk error, an editor
    env = make_env(api, db_url, IDS[:2], THULIUM_METRICS_FILE=str(file))

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    assert warnings(result) == []
    found = series(file.read_text())
    assert outcome_of(found, **JOB) == "succeeded"
    assert value(found, "thulium_etl_last_success_timestamp_seconds", **JOB) is not None


def test_the_pushgateway_holds_what_a_succeeded_a_partial_and_a_failed_run_pushed(
    api: StandIn, db_url: URL, migrated: Engine, gateway: Pushgateway
) -> None:
    seed_campaigns(api, IDS[:2])
    env = make_env(api, db_url, IDS[:2], THULIUM_PUSHGATEWAY_URL=gateway.url)
    group = frozenset(JOB.items())  # grouped by job alone: no instance label

    assert run_cli("sync", env=env).code == 0
    succeeded = gateway.groups()
    assert list(succeeded) == [group]
    assert outcome_of(succeeded[group], **JOB) == "succeeded"
    success = value(succeeded[group], "thulium_etl_last_success_timestamp_seconds", **JOB)
    assert success is not None

    assert run_cli("sync", env={**env, "THULIUM_CAMPAIGNS": ",".join(IDS)}).code == 1
    partial = gateway.groups()[group]
    assert outcome_of(partial, **JOB) == "partial"
    assert value(partial, "thulium_etl_last_run_campaigns", **JOB, outcome="failed") == 1
    assert value(partial, "thulium_etl_last_run_http_requests", **JOB, code="404") == 1
    assert value(partial, "thulium_etl_last_success_timestamp_seconds", **JOB) == success

    assert run_cli("sync", env={**env, "DATABASE_URL": UNREACHABLE_DB}).code == 3
    failed = gateway.groups()[group]
    assert outcome_of(failed, **JOB) == "failed"
    assert value(failed, "thulium_etl_last_success_timestamp_seconds", **JOB) == success
    for outcome in ("succeeded", "failed", "skipped"):  # nothing attempted: not the last run's
        assert value(failed, "thulium_etl_last_run_campaigns", **JOB, outcome=outcome) == 0


def test_each_shard_pushes_to_a_group_of_its_own(
    api: StandIn, db_url: URL, migrated: Engine, gateway: Pushgateway
) -> None:
    seed_campaigns(api, IDS[:2])
    env = make_env(api, db_url, IDS[:2], THULIUM_PUSHGATEWAY_URL=gateway.url)

    for shard in ("0/2", "1/2"):
        assert run_cli("sync", env={**env, "THULIUM_SHARD": shard}).code == 0

    groups = gateway.groups()
    assert set(groups) == {frozenset({**JOB, "shard": s}.items()) for s in ("0/2", "1/2")}
    for labels, found in groups.items():
        assert outcome_of(found, **dict(labels)) == "succeeded"


def test_the_textfile_is_readable_by_node_exporter_whatever_the_umask(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path
) -> None:
    seed_campaigns(api, IDS[:2], n=5)
    file = tmp_path / "thulium-etl.prom"
    env = make_env(api, db_url, IDS[:2], THULIUM_METRICS_FILE=str(file))

    proc = spawn_cli("sync", env=env, umask=0o077)  # the systemd unit's umask
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 0, err
    assert stat.S_IMODE(file.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == [file.name]  # no temporary left behind


def test_every_figure_of_the_last_run_is_a_gauge(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path
) -> None:
    seed_campaigns(api, IDS[:2], n=5)
    file = tmp_path / "thulium-etl.prom"

    run_cli("sync", env=make_env(api, db_url, IDS, THULIUM_METRICS_FILE=str(file)))

    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", file.read_text(), re.M))
    assert set(types.values()) == {"gauge"}, types


def test_a_pushgateway_that_trickles_its_answer_holds_the_job_no_longer_than_the_deadline(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS[:2])
    with broken_gateway(trickle) as slow:  # a byte every 2 s: no single read ever times out
        env = make_env(api, db_url, IDS[:2], THULIUM_PUSHGATEWAY_URL=slow.url)
        result = exited(spawn_cli("sync", env=env), within=REPORT_DEADLINE + 20)

    assert result.code == 0, result.err
    [warning] = warnings(result)
    assert f"could not push the metrics to {slow.url}" in warning
    assert f"within {REPORT_DEADLINE:g} s" in warning
    assert last_run_outcome(migrated) == "succeeded"


def test_sigterm_during_the_push_ends_the_job_at_once_with_its_runs_exit_code(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS[:2])
    with broken_gateway(trickle) as slow:
        env = make_env(api, db_url, IDS[:2], THULIUM_PUSHGATEWAY_URL=slow.url)
        proc = spawn_cli("sync", env=env)
        assert slow.pushed.wait(30), "the job never pushed"
        proc.send_signal(signal.SIGTERM)
        result = exited(proc, within=5)

    assert result.code == 0, result.err  # the run succeeded before the signal
    assert any(f"could not push the metrics to {slow.url}" in w for w in warnings(result))
    assert last_run_outcome(migrated) == "succeeded"


def test_an_interrupted_run_still_pushes_and_a_second_sigterm_ends_the_push_at_once(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS[:2])
    api.latency = 20  # the run is still fetching when the first SIGTERM comes
    with broken_gateway(trickle) as slow:
        env = make_env(api, db_url, IDS[:2], THULIUM_PUSHGATEWAY_URL=slow.url)
        proc = spawn_cli("sync", env=env)
        deadline = time.monotonic() + 30
        while api.total_requests == 0:
            assert time.monotonic() < deadline, "the job never asked the API"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert slow.pushed.wait(30), "the interrupted run never pushed"
        proc.send_signal(signal.SIGTERM)
        result = exited(proc, within=5)

    assert result.code == 143, result.err
    assert last_run_outcome(migrated) == "interrupted"


def test_a_fifo_as_the_metrics_file_is_refused_before_the_run(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path
) -> None:
    fifo = tmp_path / "thulium-etl.prom"
    os.mkfifo(fifo)  # with no writer: opening it to read would wait for one for good
    env = make_env(api, db_url, IDS[:2], THULIUM_METRICS_FILE=str(fifo))

    result = exited(spawn_cli("sync", env=env), within=30)

    assert result.code == 2, result.err
    assert "THULIUM_METRICS_FILE" in result.err and "not a regular file" in result.err
    assert api.total_requests == 0


def test_a_fifo_that_replaced_the_metrics_file_during_the_run_is_a_warning_not_a_hang(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path
) -> None:
    seed_campaigns(api, IDS[:2])
    api.latency = 1  # long enough to put the FIFO there while the run fetches
    file = tmp_path / "thulium-etl.prom"
    env = make_env(api, db_url, IDS[:2], THULIUM_METRICS_FILE=str(file))
    proc = spawn_cli("sync", env=env)
    deadline = time.monotonic() + 30
    while api.total_requests == 0:
        assert time.monotonic() < deadline, "the job never asked the API"
        time.sleep(0.02)
    os.mkfifo(file)

    result = exited(proc, within=30)

    assert result.code == 0, result.err
    [warning] = warnings(result)
    assert f"could not write the metrics to {file}" in warning and "regular file" in warning
    assert stat.S_ISFIFO(file.stat().st_mode)  # left as it was


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirected_push_is_a_failed_push(
    api: StandIn, db_url: URL, migrated: Engine, code: int
) -> None:
    seed_campaigns(api, IDS[:2])
    with broken_gateway(redirect(code)) as moved:
        env = make_env(api, db_url, IDS[:2], THULIUM_PUSHGATEWAY_URL=moved.url)
        result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    [warning] = warnings(result)
    assert warning.startswith(f"could not push the metrics to {moved.url}: HTTP Error {code}")
    assert not any("metrics pushed" in e["message"] for e in result.events())
    assert [(a.method, a.path) for a in moved.asked] == [("POST", "/metrics/job/thulium-etl")]


def test_the_push_authenticates_to_a_pushgateway_that_requires_basic_auth(
    api: StandIn, db_url: URL, migrated: Engine, guarded_gateway: Pushgateway, tmp_path: Path
) -> None:
    seed_campaigns(api, IDS[:2])
    user, password = GATEWAY_AUTH
    password_file = tmp_path / "pushgateway-password"
    password_file.write_text(password + "\n", encoding="utf-8")
    auth = {
        "THULIUM_PUSHGATEWAY_USER": user,
        "THULIUM_PUSHGATEWAY_PASSWORD_FILE": str(password_file),
    }
    env = make_env(api, db_url, IDS[:2], THULIUM_PUSHGATEWAY_URL=guarded_gateway.url, **auth)

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    assert warnings(result) == []
    group = guarded_gateway.groups()[frozenset(JOB.items())]
    assert outcome_of(group, **JOB) == "succeeded"


def test_a_refused_password_is_a_warning_that_names_no_secret(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS[:2])
    user, wrong = "etl-pusher", "wrong-Pa55-lynx"
    token = base64.b64encode(f"{user}:{wrong}".encode()).decode()
    auth = {"THULIUM_PUSHGATEWAY_USER": user, "THULIUM_PUSHGATEWAY_PASSWORD": wrong}
    with broken_gateway(unauthorized) as guarded:
        env = make_env(api, db_url, IDS[:2], THULIUM_PUSHGATEWAY_URL=guarded.url, **auth)
        result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    [warning] = warnings(result)
    assert warning.startswith(f"could not push the metrics to {guarded.url}: HTTP Error 401")
    # sent with the first request, and not again once refused
    assert guarded.asked == [Asked("POST", "/metrics/job/thulium-etl", f"Basic {token}")]
    assert wrong not in result.err + result.out and token not in result.err + result.out
