"""``check``: is everything a sync needs in place? The database, then every campaign's answer.

The campaigns go through the same fetch pipeline as a sync (same concurrency, retries and
messages, a 401 stops it early), so checking 400 campaigns takes as long as a sync's
fetching; nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine

from etl import migrate
from etl.client import ThuliumClient
from etl.config import CheckCommand
from etl.database import database_errors, describe
from etl.errors import DatabaseError
from etl.fetch import Fetched, Fetcher
from etl.retry import RetryGate
from etl.schema import REVISION
from etl.stop import Stop


@dataclass(frozen=True)
class Verdict:
    """One line of ``check``'s report."""

    ok: bool
    what: str  # "database" or "campaign 00001"
    detail: str


def check_database(engine: Engine) -> Verdict:
    try:
        with database_errors(engine, doing="checking"), engine.connect() as conn:
            migrate.require_current(conn)
    except DatabaseError as exc:
        return Verdict(False, "database", str(exc))
    return Verdict(True, "database", f"{describe(engine.url)} reachable, schema at {REVISION}")


def check_campaigns(settings: CheckCommand, *, quick: bool, stop: Stop) -> Iterator[Verdict]:
    """A verdict per campaign (the first only if ``quick``), as each answer arrives."""
    ids = settings.campaigns.ids[:1] if quick else settings.campaigns.ids
    gate = RetryGate(budget=settings.retry.budget, max_rps=settings.fetch.max_rps, stop=stop)
    heard: set[str] = set()
    with (
        ThuliumClient(settings.api, settings.retry, gate) as client,
        Fetcher(client, ids, concurrency=settings.fetch.concurrency, stop=stop) as results,
    ):
        for result in results:
            heard.add(result.campaign_id)
            if isinstance(result, Fetched):
                yield Verdict(
                    True,
                    f"campaign {result.campaign_id}",
                    f"{len(result.snapshot.statuses)} statuses",
                )
            else:
                detail = result.error or ""
                if result.request_id:
                    detail += f" (Thulium request_id {result.request_id})"
                yield Verdict(False, f"campaign {result.campaign_id}", detail)
        auth_failed = results.auth_failed
    why = (
        "not checked: the API rejected the credentials (HTTP 401) for another campaign"
        if auth_failed
        else "not checked: the check was interrupted"
    )
    for campaign_id in ids:
        if campaign_id not in heard:
            yield Verdict(False, f"campaign {campaign_id}", why)
