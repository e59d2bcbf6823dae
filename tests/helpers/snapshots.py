"""Numbered snapshots of campaigns, for tests that interrupt a sync between two of them.

Each version renames every status and changes how many there are, so a campaign whose rows
mix two versions (a half-written campaign) can never pass for a whole one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine, text

from standin import StandIn, sample_statuses
from tests.helpers.data import Statuses, as_api, canonical, stored_statuses
from tests.helpers.history import assert_history_matches


def version(campaign_id: str, number: int) -> Statuses:
    """Snapshot ``number`` of a campaign."""
    base = sample_statuses(campaign_id, 6 + number % 3, seed=int(campaign_id))
    return [{**item, "name": f"{item['name']} v{number}"} for item in base]


def serve(api: StandIn, ids: Sequence[str], number: int) -> None:
    for campaign_id in ids:
        api.set_statuses(campaign_id, version(campaign_id, number))


def assert_whole(engine: Engine, ids: Sequence[str], numbers: range) -> None:
    """Every campaign holds one whole snapshot of ``numbers``, or nothing yet, and its history
    says the same."""
    assert_history_matches(engine)
    for campaign_id in ids:
        stored = as_api(stored_statuses(engine, campaign_id))
        if not stored:
            continue  # never written: allowed, nothing half-written
        whole = [n for n in numbers if stored == canonical(version(campaign_id, n))]
        assert whole, f"campaign {campaign_id} holds a mixture of snapshots: {stored}"


def assert_at(engine: Engine, ids: Sequence[str], number: int) -> None:
    """Every campaign holds exactly snapshot ``number``, and its history says the same."""
    assert_history_matches(engine)
    for campaign_id in ids:
        stored = as_api(stored_statuses(engine, campaign_id))
        assert stored == canonical(version(campaign_id, number)), campaign_id


def wait_until(predicate: Callable[[], bool], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def committed(engine: Engine) -> int:
    """Campaign outcomes committed so far, over all runs."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM sync_run_campaigns")).scalar_one())


def assert_totals_add_up(engine: Engine) -> None:
    """Every finished run's totals are the counts of its per-campaign rows, and a run that
    recorded its plan has a row for every campaign of it."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT r.run_id, r.outcome, r.campaign_ids, r.campaigns_total, r.campaigns_ok,
                       r.campaigns_failed, r.campaigns_skipped, r.rows_inserted,
                       r.rows_updated, r.rows_deleted,
                       (SELECT array_agg(c.campaign_id ORDER BY c.campaign_id)
                        FROM sync_run_campaigns c WHERE c.run_id = r.run_id) AS recorded,
                       (SELECT ARRAY[count(*) FILTER (WHERE outcome = 'succeeded'),
                                     count(*) FILTER (WHERE outcome = 'failed'),
                                     count(*) FILTER (WHERE outcome = 'skipped'),
                                     coalesce(sum(rows_inserted), 0),
                                     coalesce(sum(rows_updated), 0),
                                     coalesce(sum(rows_deleted), 0)]
                        FROM sync_run_campaigns c WHERE c.run_id = r.run_id) AS counted
                FROM sync_runs r WHERE r.outcome <> 'running'
                """
            )
        ).mappings()
        for run in rows:
            totals = [
                run["campaigns_ok"],
                run["campaigns_failed"],
                run["campaigns_skipped"],
                run["rows_inserted"],
                run["rows_updated"],
                run["rows_deleted"],
            ]
            assert totals == list(run["counted"]), dict(run)
            recorded = run["recorded"] or []
            assert sorted(run["campaign_ids"]) == recorded, dict(run)
            assert run["campaigns_total"] == len(recorded), dict(run)
