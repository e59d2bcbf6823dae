"""A fault on one campaign's API answer costs that campaign alone, and its stored rows stay put.

Every case: three campaigns are synced cleanly, then the stand-in serves changed data for all
three while one of them (the victim) misbehaves, and ``sync`` runs again. Transient faults
that a retry outlives must leave no trace but the extra request; anything else must fail the
victim only: its rows keep their old tuple versions (same ``xmin``), the others get the new
data, and the run history says what went wrong in words (and with Thulium's ``request_id``).

The helpers here (:func:`prepare`, :class:`Scenario`, …) are shared with the auth and retry
policy modules.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl.standin import Fault, StandIn
from etl.standin.server import INVALID_JSON_BODY
from tests.conftest import (
    Result,
    as_api,
    canonical,
    make_env,
    run_cli,
    seed_campaigns,
    stored_statuses,
)

Rows = dict[str, dict[str, Any]]
Statuses = list[dict[str, object]]

#: The stand-in's request ids (``uuid4().hex``), sent in error bodies and ``X-Request-Id``.
STANDIN_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
NEW_STATUS_ID = "999999"  # sample_statuses ids stay below 90 000 + n

_counter = itertools.count(1)


class Unchecked(Enum):
    """Marks an expectation a test leaves open."""

    UNCHECKED = "unchecked"


# -- shared helpers ----------------------------------------------------------------------------


def new_ids(prefix: str, n: int = 3) -> list[str]:
    """Campaign ids no other test of the module has used, so tests can share one schema."""
    return [f"{prefix}{next(_counter):04d}" for _ in range(n)]


def rows_with_xmin(engine: Engine, campaign_id: str) -> Rows:
    """``status_id`` → stored row plus its ``xmin``: an unchanged xmin means an untouched tuple."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT xmin::text AS xmin, * FROM statuses WHERE campaign_id = :c"),
            {"c": campaign_id},
        ).mappings()
        return {row["status_id"]: dict(row) for row in rows}


def campaign_row(engine: Engine, campaign_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(
            conn.execute(text("SELECT * FROM campaigns WHERE campaign_id = :c"), {"c": campaign_id})
            .mappings()
            .one()
        )


def last_run(engine: Engine) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The newest ``sync_runs`` row and its ``sync_run_campaigns`` rows by campaign id."""
    with engine.connect() as conn:
        run = dict(
            conn.execute(text("SELECT * FROM sync_runs ORDER BY run_id DESC LIMIT 1"))
            .mappings()
            .one()
        )
        rows = conn.execute(
            text("SELECT * FROM sync_run_campaigns WHERE run_id = :r"), {"r": run["run_id"]}
        ).mappings()
        return run, {row["campaign_id"]: dict(row) for row in rows}


def changed(statuses: Statuses) -> Statuses:
    """The next answer for a campaign: first status renamed, last one gone, one new one."""
    new = [dict(item) for item in statuses[:-1]]
    new[0]["name"] = f"{new[0]['name']} (zmieniony)"
    new.append(
        {
            "status_id": NEW_STATUS_ID,
            "system_status": "CALL",
            "dictionary_status_id": None,
            "name": "Nowy status",
        }
    )
    return new


@dataclass
class Scenario:
    """Campaigns synced once, then served changed data; ``victim`` is the one to break."""

    api: StandIn
    engine: Engine
    env: dict[str, str]
    ids: list[str]
    before: dict[str, Rows]
    campaigns_before: dict[str, dict[str, Any]]
    old: dict[str, Statuses]
    new: dict[str, Statuses]

    @property
    def victim(self) -> str:
        return self.ids[0]

    @property
    def others(self) -> list[str]:
        return self.ids[1:]

    def sync(self, **env: str) -> Result:
        return run_cli("sync", env={**self.env, **env})

    def assert_untouched(self, campaign_id: str) -> None:
        """Exactly the rows of the first sync: same tuples (xmin), nothing soft-deleted."""
        rows = rows_with_xmin(self.engine, campaign_id)
        assert rows == self.before[campaign_id]
        assert as_api(rows) == canonical(self.old[campaign_id])
        assert all(row["deleted_at"] is None for row in rows.values())
        assert (
            campaign_row(self.engine, campaign_id)["last_synced_at"]
            == (self.campaigns_before[campaign_id]["last_synced_at"])
        )

    def assert_has_new_data(self, campaign_id: str) -> None:
        rows = stored_statuses(self.engine, campaign_id)
        assert as_api(rows) == canonical(self.new[campaign_id])
        gone = str(self.old[campaign_id][-1]["status_id"])
        assert rows[gone]["deleted_at"] is not None
        assert (
            campaign_row(self.engine, campaign_id)["last_synced_at"]
            > (self.campaigns_before[campaign_id]["last_synced_at"])
        )


def prepare(
    api: StandIn, db_url: URL, engine: Engine, *, prefix: str = "F", n: int = 3, **extra: str
) -> Scenario:
    """Sync ``n`` fresh campaigns cleanly, then make the stand-in serve changed data for all."""
    ids = new_ids(prefix, n)
    env = make_env(api, db_url, ids, **extra)
    served = seed_campaigns(api, ids)
    first = run_cli("sync", env=env)
    assert first.code == 0, first.err
    before = {c: rows_with_xmin(engine, c) for c in ids}
    assert all(len(rows) == len(served[c]) for c, rows in before.items())
    new = {c: changed(served[c]) for c in ids}
    for campaign_id, statuses in new.items():
        api.set_statuses(campaign_id, statuses)
    api.reset_counts()
    return Scenario(
        api=api,
        engine=engine,
        env=env,
        ids=ids,
        before=before,
        campaigns_before={c: campaign_row(engine, c) for c in ids},
        old=served,
        new=new,
    )


def assert_victim_failed(
    s: Scenario,
    result: Result,
    *,
    requests: int,
    error: list[str],
    http_status: int | Unchecked | None = Unchecked.UNCHECKED,
    request_id: str | re.Pattern[str] | None = None,
) -> dict[str, Any]:
    """The victim failed alone: untouched, recorded with ``error`` (regexes), others synced."""
    assert result.code == 1, result.err
    assert s.api.requests_for(s.victim) == requests
    s.assert_untouched(s.victim)
    for campaign_id in s.others:
        assert s.api.requests_for(campaign_id) == 1
        s.assert_has_new_data(campaign_id)

    run, outcomes = last_run(s.engine)
    assert run["outcome"] == "partial"
    assert (run["campaigns_ok"], run["campaigns_failed"], run["campaigns_skipped"]) == (
        len(s.others),
        1,
        0,
    )
    assert sorted(outcomes) == sorted(s.ids)
    assert all(outcomes[c]["outcome"] == "succeeded" for c in s.others)
    row = outcomes[s.victim]
    assert row["outcome"] == "failed"
    assert row["attempts"] == requests
    message = row["error"]
    assert message
    for pattern in error:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    if not isinstance(http_status, Unchecked):
        assert row["http_status"] == http_status
    if isinstance(request_id, re.Pattern):
        assert row["request_id"] is not None and request_id.fullmatch(row["request_id"])
    else:
        assert row["request_id"] == request_id
    assert run["error"] and s.victim in run["error"]

    campaign = campaign_row(s.engine, s.victim)
    assert campaign["last_attempt_outcome"] == "failed"
    assert campaign["last_error"] == message
    assert campaign["last_attempt_at"] > s.campaigns_before[s.victim]["last_attempt_at"]
    for campaign_id in s.others:
        assert campaign_row(s.engine, campaign_id)["last_attempt_outcome"] == "succeeded"

    logged = [e for e in result.events() if e.get("campaign_id") == s.victim and "outcome" in e]
    assert [e["outcome"] for e in logged] == ["failed"]
    assert logged[0]["level"] == "error"
    return row


def assert_all_synced(s: Scenario, result: Result, *, victim_requests: int) -> None:
    """Every campaign got the new data; the victim needed ``victim_requests`` attempts."""
    assert result.code == 0, result.err
    assert s.api.requests_for(s.victim) == victim_requests
    for campaign_id in s.ids:
        s.assert_has_new_data(campaign_id)
    for campaign_id in s.others:
        assert s.api.requests_for(campaign_id) == 1
    run, outcomes = last_run(s.engine)
    assert run["outcome"] == "succeeded"
    assert run["error"] is None
    assert sorted(outcomes) == sorted(s.ids)
    for campaign_id, row in outcomes.items():
        assert row["outcome"] == "succeeded"
        assert row["error"] is None
        assert row["attempts"] == (victim_requests if campaign_id == s.victim else 1)
        assert (row["rows_inserted"], row["rows_updated"], row["rows_deleted"]) == (1, 1, 1)
        campaign = campaign_row(s.engine, campaign_id)
        assert (campaign["last_attempt_outcome"], campaign["last_error"]) == ("succeeded", None)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def scenario(schema: Engine, api: StandIn, db_url: URL, engine: Engine) -> Scenario:
    return prepare(api, db_url, engine, THULIUM_TIMEOUT="0.3")


# -- transient faults: retried --------------------------------------------------------------------

TRANSIENT_ONCE = {
    "500": Fault.status(500),
    "502": Fault.status(502),
    "503": Fault.status(503),
    "504": Fault.status(504),
    "408": Fault.status(408),
    "429-retry-after-0": Fault.retry_after("0"),
    "timeout": Fault.delay(1.0),
    "connection-reset": Fault.reset(),
    "truncated-body": Fault.truncated(),
    "html-502-page": Fault.html(502),
}


@pytest.mark.parametrize("fault", TRANSIENT_ONCE.values(), ids=TRANSIENT_ONCE.keys())
def test_a_transient_fault_once_is_retried_and_the_campaign_synced(
    scenario: Scenario, fault: Fault
) -> None:
    scenario.api.add_faults(scenario.victim, fault)

    result = scenario.sync()

    assert_all_synced(scenario, result, victim_requests=2)


TRANSIENT_FOREVER: dict[str, tuple[Fault, list[str], int | None, re.Pattern[str] | None]] = {
    "503": (
        Fault.status(503),
        [r"HTTP 503", r"Service Unavailable", r"3 attempts"],
        503,
        STANDIN_REQUEST_ID,
    ),
    "timeout": (Fault.delay(1.0), [r"(?i)timed? ?out"], None, None),
    "connection-reset": (Fault.reset(), [r"(?i)connection"], None, None),
    "html-502-page": (
        Fault.html(502),
        [r"HTTP 502", r"<title>502 Bad Gateway</title>"],
        502,
        STANDIN_REQUEST_ID,
    ),
}


@pytest.mark.parametrize(
    ("fault", "error", "http_status", "request_id"),
    TRANSIENT_FOREVER.values(),
    ids=TRANSIENT_FOREVER.keys(),
)
def test_a_transient_fault_that_persists_fails_after_every_attempt(
    scenario: Scenario,
    fault: Fault,
    error: list[str],
    http_status: int | None,
    request_id: re.Pattern[str] | None,
) -> None:
    scenario.api.set_permanent_fault(scenario.victim, fault)

    result = scenario.sync()

    assert_victim_failed(
        scenario,
        result,
        requests=3,
        error=error,
        http_status=http_status,
        request_id=request_id,
    )


# -- bodies that are not the array of statuses: failed, never retried ----------------------------

LOGIN_PAGE = (
    "<!DOCTYPE html>\n<html>\n  <head><title>Thulium - Zaloguj się</title></head>\n"
    '  <body><form action="/login"><input name="login"></form></body>\n</html>\n'
)


def test_invalid_json_like_the_docs_sample_fails_without_a_retry(scenario: Scenario) -> None:
    scenario.api.set_permanent_fault(scenario.victim, Fault.invalid_json())

    result = scenario.sync()

    assert_victim_failed(
        scenario,
        result,
        requests=1,
        error=[r"not valid JSON", re.escape(INVALID_JSON_BODY[:20].decode())],
    )


def test_an_html_page_served_with_200_fails_and_quotes_its_start(scenario: Scenario) -> None:
    scenario.api.set_body(scenario.victim, LOGIN_PAGE, content_type="text/html")

    result = scenario.sync()

    assert_victim_failed(
        scenario,
        result,
        requests=1,
        error=[r"not valid JSON", r"<!DOCTYPE html> <html>", r"Thulium - Zaloguj się"],
    )


def test_an_error_object_served_with_200_fails_with_its_message_and_request_id(
    scenario: Scenario,
) -> None:
    body = {"request_id": "abc", "errors": [{"message": "Boom", "code": 1}]}
    scenario.api.set_body(scenario.victim, json.dumps(body))

    result = scenario.sync()

    assert_victim_failed(
        scenario,
        result,
        requests=1,
        error=[r"Boom", r"(?i)expected an array"],
        request_id="abc",
    )
    assert any("abc" in e["message"] for e in result.events() if e.get("level") == "error")


def _set(index: int, field: str, value: object) -> Callable[[Statuses], None]:
    def mutate(items: Statuses) -> None:
        items[index][field] = value

    return mutate


def _drop(index: int, field: str) -> Callable[[Statuses], None]:
    def mutate(items: Statuses) -> None:
        del items[index][field]

    return mutate


def _same_id(index: int, value: object, first: object) -> Callable[[Statuses], None]:
    def mutate(items: Statuses) -> None:
        items[0]["status_id"] = first
        items[index]["status_id"] = value

    return mutate


BAD_ITEMS: dict[str, tuple[Callable[[Statuses], None], list[str]]] = {
    "status_id-float": (_set(2, "status_id", 3.0), [r"item 2", r"status_id"]),
    "status_id-bool": (_set(2, "status_id", True), [r"item 2", r"status_id", r"boolean"]),
    "status_id-null": (_set(2, "status_id", None), [r"item 2", r"status_id", r"null"]),
    "status_id-empty": (_set(2, "status_id", ""), [r"item 2", r"status_id", r"empty"]),
    "dictionary_status_id-string": (
        _set(2, "dictionary_status_id", "7"),
        [r"item 2", r"dictionary_status_id", r"string"],
    ),
    "name-int": (_set(2, "name", 5), [r"item 2", r"name"]),
    "system_status-empty": (_set(2, "system_status", ""), [r"item 2", r"system_status"]),
    "missing-name": (_drop(2, "name"), [r"item 2", r"name"]),
    "missing-system_status": (_drop(2, "system_status"), [r"item 2", r"system_status"]),
    "duplicate-status_id": (_same_id(2, "41", "41"), [r"item 2", r"41", r"twice"]),
    "duplicate-string-and-integer": (_same_id(2, 41, "41"), [r"item 2", r"41", r"twice"]),
}


@pytest.mark.parametrize(("mutate", "error"), BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
def test_a_malformed_item_fails_the_campaign_naming_the_item_and_field(
    scenario: Scenario, mutate: Callable[[Statuses], None], error: list[str]
) -> None:
    items = [dict(item) for item in scenario.new[scenario.victim]]
    mutate(items)
    scenario.api.set_body(scenario.victim, json.dumps(items, ensure_ascii=False))

    result = scenario.sync()

    assert_victim_failed(scenario, result, requests=1, error=error)


# -- permanent HTTP errors: failed at once ---------------------------------------------------------


def test_an_unknown_campaign_fails_at_once_with_thuliums_message(scenario: Scenario) -> None:
    scenario.api.remove(scenario.victim)

    result = scenario.sync()

    assert_victim_failed(
        scenario,
        result,
        requests=1,
        error=[r"HTTP 404", r"Campaign not found"],
        http_status=404,
        request_id=STANDIN_REQUEST_ID,
    )


def test_a_400_fails_at_once(scenario: Scenario) -> None:
    scenario.api.set_permanent_fault(scenario.victim, Fault.status(400))

    result = scenario.sync()

    assert_victim_failed(
        scenario,
        result,
        requests=1,
        error=[r"HTTP 400", r"Bad Request"],
        http_status=400,
        request_id=STANDIN_REQUEST_ID,
    )


def test_a_redirect_to_a_login_page_fails_at_once_naming_the_base_url(
    scenario: Scenario,
) -> None:
    """A proxy or SSO redirect is a wrong THULIUM_BASE_URL, not data: never followed."""
    scenario.api.set_permanent_fault(
        scenario.victim,
        Fault.status(302, headers={"Location": "https://sso.example.com/login"}, body=""),
    )

    result = scenario.sync()

    assert_victim_failed(
        scenario,
        result,
        requests=1,
        error=[
            r"HTTP 302",
            r"redirected to https://sso\.example\.com/login",
            r"check THULIUM_BASE_URL",
        ],
        http_status=302,
        request_id=STANDIN_REQUEST_ID,
    )
