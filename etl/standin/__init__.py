"""Stand-in Thulium API server: test equipment for tests, demo and benchmarks.

Production code must not import this package.
"""

from __future__ import annotations

from etl.standin.server import Fault, StandIn, sample_statuses

__all__ = ["Fault", "StandIn", "sample_statuses"]
