"""``python -m etl`` is the same as the ``thulium-etl`` command."""

from __future__ import annotations

from etl.cli import run

run()
