"""One sync at a time per shard: session-level Postgres advisory locks held for the whole run.

An unsharded run takes the global lock exclusively. A sharded run takes the global lock in
shared mode plus its shard's lock exclusively: shards run side by side, but never alongside
an unsharded run or a second copy of the same shard. Session-level, so the server releases
the locks the moment the process or its connection dies: a killed pod never leaves a stale
lock. If the connection is lost mid-run (a database restart), :meth:`RunLock.ensure` takes
the locks again on a new connection, or fails if another run got there first.
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from etl.errors import LockHeldError, RunTakenOver
from etl.shards import Shard

logger = logging.getLogger(__name__)

_TAKE = text(
    """
    SELECT CASE
        WHEN CAST(:shard_key AS bigint) IS NULL
            THEN pg_try_advisory_lock(CAST(:global_key AS bigint))
        WHEN pg_try_advisory_lock_shared(CAST(:global_key AS bigint))
            THEN CASE WHEN pg_try_advisory_lock(CAST(:shard_key AS bigint)) THEN true
                 ELSE NOT pg_advisory_unlock_shared(CAST(:global_key AS bigint)) END
        ELSE false
    END
    """
)


def lock_key(scope: str = "") -> int:
    """A stable signed 64-bit advisory lock key for a scope ('' is the global lock)."""
    digest = hashlib.blake2b(f"thulium-etl sync {scope}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class RunLock:
    """Holds the run's advisory locks on a dedicated connection while a run is in progress."""

    def __init__(self, engine: Engine, *, shard: Shard | None = None) -> None:
        self._engine = engine
        self._shard = shard
        self._keys = {
            "global_key": lock_key(),
            "shard_key": lock_key(f"shard {shard}") if shard else None,
        }
        self._connection: Connection | None = None

    def _try(self) -> bool:
        connection = self._engine.connect()
        got = connection.execute(_TAKE, self._keys).scalar_one()
        connection.commit()
        if got:
            self._connection = connection
        else:
            connection.close()
        return bool(got)

    def _held_by(self) -> str:
        if self._shard is None:
            return "another thulium-etl sync is running against this database"
        return (
            f"another thulium-etl sync of shard {self._shard}, or an unsharded one, is "
            "running against this database"
        )

    def acquire(self) -> None:
        if not self._try():
            raise LockHeldError(
                f"{self._held_by()} (advisory lock taken); this run did nothing. "
                "Try again when it has finished."
            )

    def ensure(self) -> None:
        """Check the lock's connection is alive; take the locks again if the server dropped it.

        While the server is down this raises the driver's error (the caller retries); once it
        answers again, the locks are taken anew or :class:`RunTakenOver` is raised.
        """
        if self._connection is not None:
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
            raise RunTakenOver(
                f"the connection holding the run lock was lost and meanwhile {self._held_by()}: "
                "this run stops here; the campaigns it recorded are kept"
            )

    def release(self) -> None:
        """Close the lock's connection: the server drops its session locks with it."""
        if self._connection is None:
            return
        try:
            self._connection.invalidate()  # never back to the pool with the locks held
        finally:
            self._connection.close()
            self._connection = None
