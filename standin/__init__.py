"""Stand-in Thulium API server: test equipment for tests, demo and benchmarks.

Production code must not import this package.
"""

from __future__ import annotations

from standin.server import STATS, Fault, StandIn, sample_statuses

__all__ = ["STATS", "Fault", "StandIn", "sample_statuses"]
