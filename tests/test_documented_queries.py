"""``docs/queries.md``: every query runs on a synced database, and the main ones answer their
question. The README's examples run too.

The database is the reporting sample (``tests/helpers/reporting.py``): four nights of syncs
with a rename, a change of system_status, a deletion and a revival, a campaign that fails
on the last night and one that stops being active. The queries take their psql variables
(``:'campaign'``, ``:'as_of'``) the way psql does: as quoted literals.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.helpers.databases import libpq
from tests.helpers.reporting import (
    CHANGING,
    DROPPED,
    FAILING,
    STATS,
    UNDOCUMENTED,
    Sample,
    psql_variables,
    sql_blocks,
    with_variables,
)

ROOT = Path(__file__).resolve().parent.parent
QUERIES = sql_blocks((ROOT / "docs" / "queries.md").read_text(encoding="utf-8"))
README_EXAMPLES = sql_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
VARIABLES = {"campaign", "as_of"}  # what the document's introduction explains

NOW = "The statuses of a campaign now"
AS_OF = "The statuses of a campaign as they were at a given time"
MIX = "How many statuses of each system status each campaign has"
STALE = "Campaigns whose data is more than a day old"
PROGRESS = "Progress of the active campaigns over the past week"
CHANGES = "What changed in the statuses over the past week"
RENAMED = "Statuses renamed in the past 30 days"
INACTIVE = "Campaigns Thulium no longer lists as active"
LAST_RUN = "What went wrong in the last run"
RUNS = "Runs per day over the past 30 days, by outcome"
UNDOCUMENTED_CODES = "Status codes Thulium does not document"


def _run(sample: Sample, heading: str, **variables: object) -> list[dict[str, Any]]:
    given = {"campaign": CHANGING, "as_of": dt.datetime.now(dt.UTC), **variables}
    query = with_variables(QUERIES[heading], {k: str(v) for k, v in given.items()})
    with psycopg.connect(libpq(sample.url), row_factory=dict_row) as conn:
        return conn.execute(query).fetchall()


def test_the_document_has_the_queries_this_test_checks() -> None:
    checked = {NOW, AS_OF, MIX, STALE, PROGRESS, CHANGES, RENAMED, INACTIVE, LAST_RUN, RUNS}
    assert checked | {UNDOCUMENTED_CODES} <= set(QUERIES)


@pytest.mark.parametrize("heading", sorted(QUERIES))
def test_every_query_runs_and_finds_rows_in_a_synced_database(
    reporting_sample: Sample, heading: str
) -> None:
    assert psql_variables(QUERIES[heading]) <= VARIABLES

    assert _run(reporting_sample, heading) != []


@pytest.mark.parametrize("heading", sorted(README_EXAMPLES))
def test_the_readmes_examples_run_on_a_synced_database(
    reporting_sample: Sample, heading: str
) -> None:
    with psycopg.connect(libpq(reporting_sample.url)) as conn:
        conn.execute(README_EXAMPLES[heading])


def test_the_statuses_as_of_a_time_show_the_old_name_before_a_rename(
    reporting_sample: Sample,
) -> None:
    def as_of(when: dt.datetime) -> dict[str, tuple[str, str]]:
        rows = _run(reporting_sample, AS_OF, as_of=when.isoformat())
        return {r["status_id"]: (r["name"], r["system_status"]) for r in rows}

    first_night = as_of(reporting_sample.between_nights(0))
    second_night = as_of(reporting_sample.between_nights(1))
    now = as_of(dt.datetime.now(dt.UTC))

    assert first_night == {
        "101": ("Nowy", "TO_CALL"),
        "102": ("Oddzwonić", "CALL"),
        "103": ("Nie dzwonić", "NO_CALL"),
        "104": ("Porzucony", "ABANDONED_AFTER_N_TRIES"),
    }
    assert second_night == {  # renamed, moved to another system_status, 103 deleted
        "101": ("Nowy kontakt", "TO_CALL"),
        "102": ("Oddzwonić", "CALL_NO_SOONER_THAN"),
        "104": ("Porzucony", "ABANDONED_AFTER_N_TRIES"),
    }
    assert now == {  # 105 added, 103 revived
        **second_night,
        "103": ("Nie dzwonić", "NO_CALL"),
        "105": ("Umówione spotkanie", "CALL"),
    }
    assert {r["status_id"] for r in _run(reporting_sample, NOW)} == set(now)
    before = reporting_sample.runs[0][1] - dt.timedelta(hours=1)
    assert as_of(before) == {}


def test_the_status_mix_counts_each_campaigns_current_statuses(reporting_sample: Sample) -> None:
    rows = _run(reporting_sample, MIX)

    mix = {(r["campaign_id"], r["system_status"]): r["status_count"] for r in rows}
    assert mix == {
        (CHANGING, "TO_CALL"): 1,
        (CHANGING, "CALL_NO_SOONER_THAN"): 1,
        (CHANGING, "NO_CALL"): 1,
        (CHANGING, "ABANDONED_AFTER_N_TRIES"): 1,
        (CHANGING, "CALL"): 1,
        (FAILING, "CALL"): 2,
        (FAILING, "TO_CALL"): 1,
        (FAILING, "NO_CALL"): 1,
        (DROPPED, "TO_CALL"): 1,
        (DROPPED, "MY_RECORD"): 1,
        (DROPPED, UNDOCUMENTED): 1,
    }


def test_the_stale_campaigns_are_the_failing_and_the_no_longer_active_one(
    reporting_sample: Sample,
) -> None:
    rows = _run(reporting_sample, STALE)

    assert [(r["campaign_id"], r["active"], r["hours_old"]) for r in rows] == [
        (DROPPED, False, 48),
        (FAILING, True, 24),
    ]
    assert rows[1]["last_attempt_outcome"] == "failed"


def test_the_weeks_progress_has_a_row_per_active_campaign_and_day(
    reporting_sample: Sample,
) -> None:
    rows = _run(reporting_sample, PROGRESS)

    progress: dict[str, list[float]] = {}
    for row in rows:
        progress.setdefault(row["campaign_id"], []).append(row["completion_percent"])
    assert progress == {
        campaign_id: [syncs[-1][campaign_id][1] for syncs in STATS]
        for campaign_id in (CHANGING, FAILING)
    }  # 00003 is no longer active
    today = dt.datetime.now(dt.UTC).date()
    assert all(today - dt.timedelta(days=6) <= r["day"] <= today for r in rows)


def test_the_weeks_changes_include_the_deletion_and_the_revival(reporting_sample: Sample) -> None:
    rows = _run(reporting_sample, CHANGES)

    changes = [(r["campaign_id"], r["status_id"], r["change"]) for r in rows]
    assert [c for c in changes if c[2] != "added"] == [
        (CHANGING, "101", "changed"),
        (CHANGING, "102", "changed"),
        (CHANGING, "103", "deleted"),
        (CHANGING, "103", "revived"),
    ]
    assert changes.count((DROPPED, "303", "added")) == 1
    assert len(changes) == 5 + 4 + 3 + 4  # every first sighting, and the four changes


def test_the_renamed_statuses_show_old_and_new_name(reporting_sample: Sample) -> None:
    rows = _run(reporting_sample, RENAMED)

    assert [(r["status_id"], r["old_name"], r["new_name"]) for r in rows] == [
        ("101", "Nowy", "Nowy kontakt")
    ]


def test_the_inactive_campaigns_are_those_thulium_stopped_listing(
    reporting_sample: Sample,
) -> None:
    rows = _run(reporting_sample, INACTIVE)

    assert [r["campaign_id"] for r in rows] == [DROPPED]


def test_the_last_runs_trouble_is_the_failing_campaign(reporting_sample: Sample) -> None:
    rows = _run(reporting_sample, LAST_RUN)

    assert [(r["campaign_id"], r["outcome"], r["http_status"]) for r in rows] == [
        (FAILING, "failed", 500)
    ]


def test_the_runs_per_day_count_each_nights_runs_by_outcome(reporting_sample: Sample) -> None:
    rows = _run(reporting_sample, RUNS)

    assert [(r["outcome"], r["runs"]) for r in rows] == [
        ("succeeded", 1),
        ("succeeded", 2),  # night 2 synced twice
        ("succeeded", 1),
        ("partial", 1),
    ]
    assert len({r["day"] for r in rows}) == 4
