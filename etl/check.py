"""``check``: is everything a sync needs in place? The database, then every campaign's answer.

The campaigns go through the same fetch pipeline as a sync (same concurrency, retries and
messages, a 401 stops it early), so checking 400 campaigns takes as long as a sync's
fetching; nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from etl import discovery, migrate
from etl.client import ThuliumClient
from etl.config import CheckCommand
from etl.database import bounded, database_errors, describe
from etl.errors import DatabaseError, DiscoveryError, with_request_id
from etl.exits import ExitCode
from etl.fetch import Fetched, Fetcher
from etl.records import CampaignStat
from etl.retry import RetryGate
from etl.schema import REVISION
from etl.stop import Stop


@dataclass(frozen=True)
class Verdict:
    """One line of ``check``'s report, and the exit code it means if it is a failure."""

    what: str  # "database", "discovery" or "campaign 00001"
    detail: str
    exit_code: ExitCode = ExitCode.OK

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK


def check_database(engine: Engine, *, schema: str, stop: Stop) -> Verdict:
    """Is the database reachable, and ``schema`` at this version's revision? A stop raises
    :class:`~etl.errors.InterruptedRun`."""
    try:
        with (
            database_errors(engine, doing="checking"),
            engine.connect() as conn,
            bounded(conn, stop, doing="checking the schema"),
        ):
            migrate.require_current(conn, schema=schema)
    except DatabaseError as exc:
        return Verdict("database", str(exc), exc.exit_code)
    return Verdict("database", f"{describe(engine.url)} reachable, schema {schema} at {REVISION}")


def check_campaigns(settings: CheckCommand, *, quick: bool, stop: Stop) -> Iterator[Verdict]:
    """With ``THULIUM_CAMPAIGNS=active`` a verdict on discovery first, then one per campaign
    (the first only if ``quick``), as each answer arrives."""
    selection = settings.campaigns.selection
    gate = RetryGate(budget=settings.retry.budget, max_rps=settings.fetch.max_rps, stop=stop)
    with ThuliumClient(settings.api, settings.retry, gate) as client:
        active: tuple[CampaignStat, ...] = ()
        if selection.active:
            try:
                active = discovery.discover(client)
            except DiscoveryError as exc:
                yield Verdict("discovery", str(exc), exc.exit_code)
                return
            found = ", ".join(stat.campaign_id for stat in active[:10])
            more = " …" if len(active) > 10 else ""
            yield Verdict("discovery", f"{len(active)} active campaign(s): {found}{more}")
        ids = discovery.campaigns(selection, active, None)
        yield from _fetched(client, ids[:1] if quick else ids, settings=settings, stop=stop)


def _fetched(
    client: ThuliumClient, ids: Sequence[str], *, settings: CheckCommand, stop: Stop
) -> Iterator[Verdict]:
    heard: set[str] = set()
    with Fetcher(client, ids, concurrency=settings.fetch.concurrency, stop=stop) as results:
        for result in results:
            heard.add(result.campaign_id)
            if isinstance(result, Fetched):
                yield Verdict(
                    f"campaign {result.campaign_id}", f"{len(result.snapshot.statuses)} statuses"
                )
            else:
                detail = with_request_id(result.error or "", result.request_id)
                yield Verdict(f"campaign {result.campaign_id}", detail, ExitCode.CAMPAIGN_FAILED)
        halted = results.halted
    why = f"not checked: {halted.value if halted else 'the check was interrupted'}"
    for campaign_id in ids:
        if campaign_id not in heard:
            yield Verdict(f"campaign {campaign_id}", why, ExitCode.CAMPAIGN_FAILED)
