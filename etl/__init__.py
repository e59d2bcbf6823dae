"""thulium-etl: a nightly copy of Thulium outbound campaign statuses into PostgreSQL."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("thulium-etl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
