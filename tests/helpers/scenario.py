"""A fault on one campaign's answer, staged: campaigns synced cleanly once, then served
changed data while one of them (the victim) misbehaves.

:func:`prepare` stages it; :func:`assert_victim_failed` checks the victim failed alone (its
rows keep their old tuple versions, the others get the new data, the run history says what
went wrong) and :func:`assert_all_synced` that a fault a retry outlives left no trace but the
extra request.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from standin import StandIn
from tests.helpers.cli import Result, make_env, run_cli
from tests.helpers.data import (
    Rows,
    Statuses,
    as_api,
    campaign_row,
    canonical,
    last_run,
    rows_with_xmin,
    seed_campaigns,
    stored_statuses,
)
from tests.helpers.history import assert_history_matches

#: The stand-in's request ids (``uuid4().hex``), sent in error bodies and ``X-Request-Id``.
STANDIN_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
NEW_STATUS_ID = "999999"  # sample_statuses ids stay below 90 000 + n

_counter = itertools.count(1)


class Unchecked(Enum):
    """Marks an expectation a test leaves open."""

    UNCHECKED = "unchecked"


def new_ids(prefix: str, n: int = 3) -> list[str]:
    """Campaign ids no other test has used: ``prefix`` and a number."""
    return [f"{prefix}{next(_counter):04d}" for _ in range(n)]


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
    assert_history_matches(s.engine)
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
    assert_history_matches(s.engine)
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
