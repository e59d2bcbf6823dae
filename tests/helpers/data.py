"""Statuses the stand-in serves, and what the database stores of them and of the runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, text

from standin import StandIn, sample_statuses

Statuses = list[dict[str, object]]
Rows = dict[str, dict[str, Any]]


def status(status_id: str, system_status: str, dictionary: int | None, name: str) -> Any:
    """One status as Thulium's API returns it."""
    return {
        "status_id": status_id,
        "system_status": system_status,
        "dictionary_status_id": dictionary,
        "name": name,
    }


def seed_campaigns(api: StandIn, ids: list[str], *, n: int = 5) -> dict[str, Statuses]:
    """Give the stand-in sample statuses for ``ids``; returns what it will serve."""
    data = {}
    for seed, campaign_id in enumerate(ids):
        data[campaign_id] = sample_statuses(campaign_id, n, seed=seed)
        api.set_statuses(campaign_id, data[campaign_id])
    return data


def stored_statuses(engine: Engine, campaign_id: str) -> Rows:
    """``status_id`` → row of ``statuses`` for one campaign, deleted ones included."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM statuses WHERE campaign_id = :c ORDER BY status_id"),
            {"c": campaign_id},
        ).mappings()
        return {row["status_id"]: dict(row) for row in rows}


def rows_with_xmin(engine: Engine, campaign_id: str) -> Rows:
    """``status_id`` → stored row plus its ``xmin``: an unchanged xmin means an untouched tuple."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT xmin::text AS xmin, * FROM statuses WHERE campaign_id = :c"),
            {"c": campaign_id},
        ).mappings()
        return {row["status_id"]: dict(row) for row in rows}


def as_api(rows: Mapping[str, Mapping[str, Any]], *, live_only: bool = True) -> Statuses:
    """Stored rows in the API's shape, sorted by status_id, for comparison."""
    return sorted(
        (
            {
                "status_id": row["status_id"],
                "system_status": row["system_status"],
                "dictionary_status_id": row["dictionary_status_id"],
                "name": row["name"],
            }
            for row in rows.values()
            if not (live_only and row["deleted_at"] is not None)
        ),
        key=lambda item: str(item["status_id"]),
    )


def canonical(statuses: list[dict[str, object]]) -> list[dict[str, object]]:
    """API items as they must be stored: ``status_id`` as text, sorted."""
    return sorted(
        ({**item, "status_id": str(item["status_id"])} for item in statuses),
        key=lambda item: str(item["status_id"]),
    )


def campaign_row(engine: Engine, campaign_id: str) -> dict[str, Any]:
    """The campaign's row of ``campaigns``."""
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
