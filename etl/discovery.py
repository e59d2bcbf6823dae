"""Which campaigns a run works on: the ids configured, and those Thulium lists as active.

``THULIUM_CAMPAIGNS=active`` asks ``GET /outbounds/stats`` at the start of every run, with
the same retries, validation and error messages as a campaign's statuses. A failure there is
a :class:`~etl.errors.DiscoveryError`: the run syncs nothing rather than a guess. Explicit
ids listed beside ``active`` are synced whether Thulium lists them or not; shards split the
whole list.
"""

from __future__ import annotations

from collections.abc import Sequence

from etl import shards
from etl.client import ThuliumClient
from etl.config import CampaignSelection
from etl.errors import AuthError, CampaignError, DiscoveryError, DiscoveryRefused
from etl.records import CampaignStat, parse_stats
from etl.shards import Shard


def discover(client: ThuliumClient) -> tuple[CampaignStat, ...]:
    """The active campaigns, as Thulium lists them; raises DiscoveryError."""
    try:
        return parse_stats(client.fetch_stats().body)
    except CampaignError as exc:  # the client's and the parser's errors alike
        kind = DiscoveryRefused if isinstance(exc, AuthError) else DiscoveryError
        raise kind(
            f"THULIUM_CAMPAIGNS asks for the active campaigns, and listing them failed: {exc}"
        ) from None


def campaigns(
    selection: CampaignSelection, active: Sequence[CampaignStat], shard: Shard | None
) -> tuple[str, ...]:
    """The configured ids, then the active ones not among them: the shard's part of that."""
    ids = dict.fromkeys(selection.ids)
    ids.update(dict.fromkeys(stat.campaign_id for stat in active))
    return shards.select(tuple(ids), shard)
