"""How the client retries: Retry-After honoured and capped, a run-wide budget, shared 429 backoff.

Times are the stand-in's own record of when each request arrived (``StandIn.arrivals``). Only
lower bounds on waits are asserted (a wait that must happen), never how fast things are, except
where the alternative is waiting an hour.
"""

from __future__ import annotations

import base64
import subprocess
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from standin import Fault, StandIn
from tests.helpers.cli import PASSWORD, USER, make_env, run_cli, spawn_cli
from tests.helpers.data import last_run, seed_campaigns
from tests.helpers.scenario import (
    STANDIN_REQUEST_ID,
    assert_all_synced,
    assert_victim_failed,
    prepare,
)
from tests.helpers.snapshots import assert_totals_add_up


def arrivals(api: StandIn, campaign_id: str) -> list[float]:
    """When (``time.monotonic()``) each request for the campaign reached the stand-in."""
    return [when for when, campaign in api.arrivals() if campaign == campaign_id]


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_in_seconds_is_waited_for(
    migrated: Engine, api: StandIn, db_url: URL, code: int
) -> None:
    s = prepare(api, db_url, migrated, prefix="R", THULIUM_RETRY_MAX_WAIT="5")
    api.add_faults(s.victim, Fault.retry_after("1", code=code))

    result = s.sync()

    assert_all_synced(s, result, victim_requests=2)
    first, second = arrivals(api, s.victim)
    assert second - first >= 0.9


def test_retry_after_as_an_http_date_is_waited_for(
    migrated: Engine, api: StandIn, db_url: URL
) -> None:
    s = prepare(api, db_url, migrated, prefix="R", THULIUM_RETRY_MAX_WAIT="5")
    # HTTP dates have whole seconds: two seconds ahead means a wait of more than one.
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    api.add_faults(s.victim, Fault.retry_after(when))

    result = s.sync()

    assert_all_synced(s, result, victim_requests=2)
    first, second = arrivals(api, s.victim)
    assert second - first >= 0.5  # without the date, the backoff would be ~0.01 s


def test_a_retry_after_beyond_the_maximum_wait_is_capped(
    migrated: Engine, api: StandIn, db_url: URL
) -> None:
    s = prepare(api, db_url, migrated, prefix="R")  # THULIUM_RETRY_MAX_WAIT=0.05
    api.add_faults(s.victim, Fault.retry_after("3600"))

    # A subprocess, so that an uncapped wait fails the test instead of hanging it for an hour.
    started = time.monotonic()
    proc = spawn_cli("sync", env=s.env)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("sync still waiting after 60 s: Retry-After: 3600 was not capped at 0.05 s")
    elapsed = time.monotonic() - started

    assert proc.returncode == 0, err
    assert elapsed < 60
    assert api.requests_for(s.victim) == 2
    for campaign_id in s.ids:
        s.assert_has_new_data(campaign_id)


def test_requests_carry_accept_user_agent_and_basic_auth(
    migrated: Engine, api: StandIn, db_url: URL
) -> None:
    s = prepare(api, db_url, migrated, prefix="R")
    api.add_faults(s.victim, Fault.status(503))  # the retried request too

    result = s.sync()

    assert_all_synced(s, result, victim_requests=2)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for campaign_id in s.ids:
        headers = api.last_headers(campaign_id)
        assert headers["Accept"] == "application/json"
        assert headers["User-Agent"].startswith("thulium-etl/")
        assert headers["Authorization"] == f"Basic {token}"


def test_the_retry_budget_ends_retries_long_before_the_attempts_run_out(
    migrated: Engine, api: StandIn, db_url: URL
) -> None:
    s = prepare(
        api,
        db_url,
        migrated,
        prefix="R",
        THULIUM_RETRY_BUDGET="0.2",
        THULIUM_RETRY_ATTEMPTS="50",
        THULIUM_RETRY_WAIT="0.05",
    )
    api.set_permanent_fault(s.victim, Fault.status(503))

    result = s.sync()

    # Waits of 0.05 s (THULIUM_RETRY_MAX_WAIT) in a 0.2 s budget: about 4 requests, not 50.
    requests = api.requests_for(s.victim)
    assert 2 <= requests <= 8
    assert_victim_failed(
        s,
        result,
        requests=requests,
        error=[r"HTTP 503"],
        http_status=503,
        request_id=STANDIN_REQUEST_ID,
    )


def test_an_api_that_hangs_past_the_retry_budget_ends_the_fetching(
    migrated: Engine, api: StandIn, db_url: URL
) -> None:
    ids = [f"D{n:04d}" for n in range(20)]
    seed_campaigns(api, ids)
    for campaign_id in ids:
        api.set_permanent_fault(campaign_id, Fault.delay(2.0))  # never answers in time
    env = make_env(
        api,
        db_url,
        ids,
        THULIUM_RETRY_BUDGET="0",
        THULIUM_CONCURRENCY="2",
        THULIUM_TIMEOUT="0.2",
    )

    result = run_cli("sync", env=env)

    assert result.code == 1, result.err
    # three or more failures in a row lasting two timeouts (0.4 s): about three rounds of two
    # requests, not twenty requests each waiting out its timeout
    assert 3 <= api.total_requests <= 10
    run, outcomes = last_run(migrated)
    assert run["outcome"] == "failed"
    assert "the API kept failing after the retry budget was spent" in run["error"]
    skipped = [o for o in outcomes.values() if o["outcome"] == "skipped"]
    assert len(skipped) == len(ids) - api.total_requests
    assert all("THULIUM_RETRY_BUDGET" in o["error"] for o in skipped)
    assert_totals_add_up(migrated)


def test_a_hiccup_past_the_budget_fails_its_campaigns_and_no_others(
    migrated: Engine, api: StandIn, db_url: URL
) -> None:
    ids = [f"E{n:04d}" for n in range(12)]
    seed_campaigns(api, ids)
    for campaign_id in ids[2:5]:  # three quick failures in a row: a load balancer's hiccup
        api.set_permanent_fault(campaign_id, Fault.status(503))
    env = make_env(api, db_url, ids, THULIUM_RETRY_BUDGET="0", THULIUM_CONCURRENCY="1")

    result = run_cli("sync", env=env)

    assert result.code == 1, result.err
    _, outcomes = last_run(migrated)
    assert sorted(o["outcome"] for o in outcomes.values()) == ["failed"] * 3 + ["succeeded"] * 9


def test_a_429_holds_back_every_worker_until_retry_after_has_passed(
    migrated: Engine, api: StandIn, db_url: URL
) -> None:
    s = prepare(
        api, db_url, migrated, prefix="R", n=4, THULIUM_CONCURRENCY="2", THULIUM_RETRY_MAX_WAIT="5"
    )
    throttled, slow, *later = s.ids
    api.add_faults(throttled, Fault.retry_after("1"))
    # The other worker is busy with this one while the 429 arrives; left to itself it would
    # ask for the next campaigns ~0.3 s in, well inside the second Thulium asked for.
    api.add_faults(slow, Fault.delay(0.3))

    result = s.sync()

    assert_all_synced(s, result, victim_requests=2)
    throttled_at, retried_at = arrivals(api, throttled)
    assert retried_at - throttled_at >= 0.9
    for campaign_id in later:
        assert arrivals(api, campaign_id)[0] - throttled_at >= 0.9, campaign_id
