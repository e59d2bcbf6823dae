"""One sync at a time: a session-level Postgres advisory lock held for the whole run.

Session-level, so the server releases it the moment the process or its connection dies: a
killed pod never leaves a stale lock behind. If the lock's connection is lost mid-run (a
database restart), :meth:`RunLock.ensure` takes it again on a new connection, or fails if
another run got there first.
"""

from __future__ import annotations

import logging
import zlib

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from etl.errors import LockHeldError

logger = logging.getLogger(__name__)

_NAMESPACE = "thulium-etl sync"


def lock_key(scope: str = "") -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` from a text scope."""
    digest = zlib.crc32(f"{_NAMESPACE} {scope}".encode()) | (zlib.adler32(scope.encode()) << 32)
    return digest - 2**64 if digest >= 2**63 else digest


class RunLock:
    """Holds the advisory lock on a dedicated connection while a run is in progress."""

    def __init__(self, engine: Engine, *, scope: str = "") -> None:
        self._engine = engine
        self._key = lock_key(scope)
        self._connection: Connection | None = None

    def _try(self) -> bool:
        connection = self._engine.connect()
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
        ).scalar_one()
        connection.commit()
        if got:
            self._connection = connection
        else:
            connection.close()
        return bool(got)

    def acquire(self) -> None:
        if not self._try():
            raise LockHeldError(
                "another thulium-etl sync is running against this database (advisory lock "
                f"{self._key} is taken); this run did nothing. Try again when it has finished."
            )

    def ensure(self) -> None:
        """Check the lock's connection is alive; take the lock again if the server dropped it."""
        assert self._connection is not None, "ensure() before acquire()"
        try:
            self._connection.execute(text("SELECT 1")).scalar_one()
            self._connection.commit()
            return
        except DBAPIError:
            logger.warning("lost the lock's database connection; taking the lock again")
            self._connection.invalidate()
            self._connection.close()
            self._connection = None
        if not self._try():
            raise LockHeldError(
                "the database connection holding the run lock was lost and another sync "
                "took the lock; stopping this run"
            )

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            self._connection.commit()
        except DBAPIError:
            self._connection.invalidate()  # the lock went with the dead connection anyway
        finally:
            self._connection.close()
            self._connection = None
