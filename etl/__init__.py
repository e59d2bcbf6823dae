"""thulium-etl: a nightly copy of Thulium outbound campaign statuses into PostgreSQL."""

from __future__ import annotations

# The one place the version is written: pyproject.toml reads it from here (setuptools'
# dynamic version), and so does every run, without the cost of importlib.metadata.
__version__ = "0.1.0"
