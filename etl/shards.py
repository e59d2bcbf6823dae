"""Splitting the campaigns between N pods: a stable, hash-based choice of each one's shard.

Rendezvous (highest-random-weight) hashing: a campaign goes to the shard with the highest
hash of (shard, campaign). Adding or removing a campaign moves no other campaign, and going
from N to N+1 shards moves only about 1/(N+1) of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

MAX_SHARDS = 256  # each campaign is hashed once per shard: a sane bound keeps that cheap


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``, written ``index/count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _weight(shard_index: int, campaign_id: str) -> bytes:
    return hashlib.blake2b(f"{shard_index}:{campaign_id}".encode(), digest_size=8).digest()


def shard_of(campaign_id: str, count: int) -> int:
    """The shard (0 … count-1) that owns ``campaign_id``."""
    return max(range(count), key=lambda index: _weight(index, campaign_id))


def select(campaign_ids: Sequence[str], shard: Shard | None) -> tuple[str, ...]:
    """The campaigns ``shard`` owns, in their configured order (all of them without a shard)."""
    if shard is None:
        return tuple(campaign_ids)
    return tuple(c for c in campaign_ids if shard_of(c, shard.count) == shard.index)
