"""``statuses_as_of(at)``: the statuses as they were at a moment, with the columns of
``current_statuses``, for the roles given read access only.

What it returns before a rename and before a status existed is checked with the worked example
of ``docs/queries.md`` (``tests/test_documented_queries.py``); here, what holds for every
moment and every caller. The database is the reporting sample (``tests/helpers/reporting.py``).
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from tests.helpers.cli import run_cli
from tests.helpers.databases import libpq
from tests.helpers.reporting import CHANGING, Sample
from tests.helpers.roles import connect_as

ALL_COLUMNS = (
    "campaign_id, status_id, name, system_status, system_status_pl, system_status_en, "
    "dictionary_status_id, first_seen_at, updated_at"
)


def _rows(sample: Sample, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(libpq(sample.url)) as conn:
        return conn.execute(query).fetchall()


def test_now_it_returns_exactly_what_current_statuses_does(reporting_sample: Sample) -> None:
    order = "ORDER BY campaign_id, status_id"
    current = _rows(reporting_sample, f"SELECT {ALL_COLUMNS} FROM current_statuses {order}")

    as_of_now = _rows(reporting_sample, f"SELECT * FROM statuses_as_of(now()) {order}")

    assert current and as_of_now == current


def test_a_filter_on_the_campaign_reads_only_that_campaigns_history(
    reporting_sample: Sample,
) -> None:
    """The function is inlined into the calling query: no scan of a function's whole result."""
    plan = _rows(
        reporting_sample,
        f"EXPLAIN SELECT * FROM statuses_as_of(now()) WHERE campaign_id = '{CHANGING}'",
    )

    text = "\n".join(str(row[0]) for row in plan)
    assert "Function Scan" not in text, text
    assert f"'{CHANGING}'::text" in text, text


def test_a_role_given_read_access_may_call_it_and_no_other(
    reporting_sample: Sample, reader_role: str
) -> None:
    with (
        connect_as(reporting_sample.url, reader_role) as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT * FROM statuses_as_of(now())")
    env = {
        "DATABASE_URL": reporting_sample.url.render_as_string(hide_password=False),
        "THULIUM_LOG_FORMAT": "json",
    }
    assert run_cli("grant-read", reader_role, env=env).code == 0

    with connect_as(reporting_sample.url, reader_role) as conn:
        rows = conn.execute("SELECT * FROM statuses_as_of(now())").fetchall()

    assert len(rows) > 0
