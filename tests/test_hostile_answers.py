"""Answers a real API, proxy or load balancer can give never corrupt data, crash or hang a run.

Each class of hostile answer is served by the stand-in on loopback to a real sync, and each
test asserts what the database holds afterwards: every campaign holds exactly its own
statuses, a campaign whose answer cannot be trusted fails alone with its rows untouched, and
the run history records what happened in text Postgres could store.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from standin import Fault, StandIn, sample_statuses
from tests.helpers.cli import make_env, run_cli
from tests.helpers.data import as_api, canonical, last_run, stored_statuses
from tests.helpers.history import assert_history_matches
from tests.helpers.scenario import (
    STANDIN_REQUEST_ID,
    Scenario,
    assert_all_synced,
    assert_victim_failed,
    new_ids,
)

# -- data stored under the wrong campaign --------------------------------------------------------


@pytest.mark.parametrize("delay", [0.0, 0.2], ids=["final-at-once", "final-later"])
@pytest.mark.parametrize("concurrency", ["1", "8"])
def test_interim_answers_never_put_one_campaigns_statuses_under_another(
    migrated: Engine, api: StandIn, db_url: URL, concurrency: str, delay: float
) -> None:
    ids = new_ids("I", 12)
    served = {}
    for seed, campaign_id in enumerate(ids):
        served[campaign_id] = sample_statuses(campaign_id, 3 + seed % 4, seed=seed)
        api.set_statuses(campaign_id, served[campaign_id])
        if seed % 2 == 0:  # every other campaign answers 103 first, then its real answer
            api.add_faults(campaign_id, Fault.interim(103, delay=delay))

    result = run_cli("sync", env=make_env(api, db_url, ids, THULIUM_CONCURRENCY=concurrency))

    assert result.code == 0, result.err
    for campaign_id in ids:
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(served[campaign_id])
    _, outcomes = last_run(migrated)
    for seed, campaign_id in enumerate(ids):
        assert outcomes[campaign_id]["attempts"] == (2 if seed % 2 == 0 else 1), campaign_id
    assert_history_matches(migrated)


@pytest.mark.parametrize("code", [102, 103])
def test_an_interim_answer_every_time_fails_that_campaign_alone(
    scenario: Scenario, code: int
) -> None:
    scenario.api.set_permanent_fault(scenario.victim, Fault.interim(code, delay=0.05))

    result = scenario.sync()

    assert_victim_failed(
        scenario, result, requests=3, error=[rf"HTTP {code}", r"interim answer"], http_status=code
    )


@pytest.mark.parametrize("code", [201, 203, 206])
def test_a_2xx_other_than_200_is_not_taken_for_the_complete_list(
    scenario: Scenario, code: int
) -> None:
    partial = scenario.new[scenario.victim][:1]  # would soft-delete every other status
    scenario.api.set_body(scenario.victim, json.dumps(partial), status=code)

    result = scenario.sync()

    assert_victim_failed(
        scenario,
        result,
        requests=1,
        error=[rf"HTTP {code}", r"only a 200"],
        http_status=code,
        request_id=STANDIN_REQUEST_ID,
    )


def test_a_byte_order_mark_before_the_json_is_skipped(scenario: Scenario) -> None:
    body = b"\xef\xbb\xbf" + json.dumps(scenario.new[scenario.victim]).encode()
    scenario.api.set_body(scenario.victim, body)

    result = scenario.sync()

    assert_all_synced(scenario, result, victim_requests=1)


# -- answers that never end -----------------------------------------------------------------------


@pytest.mark.parametrize("headers_first", [False, True], ids=["head-trickled", "body-trickled"])
def test_a_trickled_answer_ends_at_the_request_deadline_and_is_retried(
    scenario: Scenario, headers_first: bool
) -> None:
    # A byte every 0.05 s: no single read ever waits the 0.3 s read timeout.
    scenario.api.set_permanent_fault(
        scenario.victim, Fault.trickle(0.05, headers_first=headers_first)
    )

    result = scenario.sync(THULIUM_REQUEST_DEADLINE="0.4")

    assert_victim_failed(
        scenario, result, requests=3, error=[r"within 0\.4s", r"THULIUM_REQUEST_DEADLINE"]
    )


@pytest.mark.parametrize(
    "fault", [Fault.endless(), Fault.gzip_bomb(20_000_000)], ids=["endless", "gzip-bomb"]
)
def test_an_answer_larger_than_the_body_limit_fails_its_campaign_at_once(
    scenario: Scenario, fault: Fault
) -> None:
    scenario.api.set_permanent_fault(scenario.victim, fault)

    result = scenario.sync(THULIUM_MAX_BODY_BYTES="1000000")

    assert_victim_failed(
        scenario, result, requests=1, error=[r"THULIUM_MAX_BODY_BYTES=1000000"], http_status=200
    )


# -- one bad answer must not cost the run ---------------------------------------------------------

JUNK_RETRY_AFTER = {
    "non-ascii-digit": "\xb2",
    "latin-1-byte": "\xff",
    "year-99999": "Fri, 31 Dec 99999 23:59:59 GMT",
    "negative": "-5",
    "exponent": "1e9",
}


@pytest.mark.parametrize("value", JUNK_RETRY_AFTER.values(), ids=JUNK_RETRY_AFTER.keys())
def test_junk_retry_after_means_our_own_backoff(scenario: Scenario, value: str) -> None:
    scenario.api.add_faults(scenario.victim, Fault.retry_after(value, code=503))

    result = scenario.sync()

    assert_all_synced(scenario, result, victim_requests=2)


@pytest.mark.parametrize("value", JUNK_RETRY_AFTER.values(), ids=JUNK_RETRY_AFTER.keys())
def test_junk_retry_after_does_not_crash_check(scenario: Scenario, value: str) -> None:
    scenario.api.add_faults(scenario.victim, Fault.retry_after(value, code=429))

    result = run_cli("check", env=scenario.env)

    assert result.code == 0, result.out + result.err
    assert f"PASS  campaign {scenario.victim}:" in result.out


ANY_TEXT = re.compile(".*", re.DOTALL)

UNSTORABLE_ANSWERS = {
    "nul-and-surrogate-in-thuliums-error": Fault.status(
        404,
        body=json.dumps(
            {"request_id": "req\x00id", "errors": [{"message": "no\x00such \ud800one", "code": 7}]}
        ),
    ),
    "nul-in-status-line-and-headers": Fault.status(
        400,
        body="not json",
        reason="Bad\x00Request",
        headers={"X-Request-Id": "req\x00id"},
        content_type="text/pl\x00ain",
    ),
    "nul-in-redirect-location": Fault.status(
        302, body="", headers={"Location": "https://sso.example.com/\x00login"}
    ),
    "a-megabyte-of-message": Fault.status(
        400, body=json.dumps({"request_id": "r" * 5000, "errors": [{"message": "x" * 10**6}]})
    ),
}


@pytest.mark.parametrize("fault", UNSTORABLE_ANSWERS.values(), ids=UNSTORABLE_ANSWERS.keys())
def test_api_text_postgres_cannot_store_is_recorded_cleaned(
    scenario: Scenario, fault: Fault
) -> None:
    scenario.api.set_permanent_fault(scenario.victim, fault)

    result = scenario.sync()

    row = assert_victim_failed(
        scenario, result, requests=1, error=[r"HTTP (302|400|404)"], request_id=ANY_TEXT
    )
    for text in (row["error"], row["request_id"] or ""):
        assert "\x00" not in text
        assert not re.search("[\ud800-\udfff]", text)
    assert len(row["error"]) <= 2000
    assert len(row["request_id"] or "") <= 200
    assert "\ufffd" in row["error"] + (row["request_id"] or "") or "…" in row["error"]
    assert all(event["level"] != "critical" for event in result.events())  # every line parsed


def test_a_password_with_polish_letters_and_a_euro_sign_is_sent_as_utf8(
    migrated: Engine, db_url: URL
) -> None:
    password = "zażółć-gęślą-jaźń-€"
    with StandIn(user="etl-test", password=password) as api:
        ids = new_ids("P", 2)
        served = {c: sample_statuses(c, 4) for c in ids}
        for campaign_id, statuses in served.items():
            api.set_statuses(campaign_id, statuses)

        result = run_cli("sync", env=make_env(api, db_url, ids, THULIUM_PASSWORD=password))

    assert result.code == 0, result.err
    for campaign_id in ids:
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(served[campaign_id])


def test_a_wrong_non_latin1_password_fails_without_revealing_any_of_it(
    migrated: Engine, api: StandIn, db_url: URL
) -> None:
    wrong = "hasło-€-źdźbło"
    ids = new_ids("Q", 2)
    for campaign_id in ids:
        api.set_statuses(campaign_id, sample_statuses(campaign_id, 2))

    result = run_cli("sync", env=make_env(api, db_url, ids, THULIUM_PASSWORD=wrong))

    assert result.code == 1, result.err
    run, outcomes = last_run(migrated)
    assert run["outcome"] == "failed" and "401" in run["error"]
    stored = run["error"] + "".join(row["error"] for row in outcomes.values())
    for text in (result.err, result.out, stored):
        assert "€" not in text and "ł" not in text and "position" not in text
