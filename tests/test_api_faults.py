"""A fault on one campaign's API answer costs that campaign alone, and its stored rows stay put.

Every case: three campaigns are synced cleanly, then the stand-in serves changed data for all
three while one of them (the victim) misbehaves, and ``sync`` runs again. Transient faults
that a retry outlives must leave no trace but the extra request; anything else must fail the
victim only: its rows keep their old tuple versions (same ``xmin``), the others get the new
data, and the run history says what went wrong in words (and with Thulium's ``request_id``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from standin import Fault
from standin.server import INVALID_JSON_BODY
from tests.helpers.data import Statuses
from tests.helpers.scenario import (
    STANDIN_REQUEST_ID,
    Scenario,
    assert_all_synced,
    assert_victim_failed,
)

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
