"""One sync at a time per shard: session-level Postgres advisory locks held for the whole run.

An unsharded run takes the global lock exclusively. A sharded run takes the global lock in
shared mode, its shard's lock exclusively and its number of shards' lock in shared mode:
shards of one count run side by side, but never alongside an unsharded run, a second copy of
the same shard, or shards of another count (which would write the same campaigns).
Session-level, so the server releases the locks the moment the process or its connection
dies: a killed pod never leaves a stale lock. If the connection is lost mid-run (a database
restart), :meth:`RunLock.ensure` takes the locks again on a new connection, or fails if
another run got there first.
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


#: The first half of the two-key advisory lock (SHARD_COUNTS, N) a run of N shards holds
#: shared: positive, so that ``pg_locks.classid`` shows it as it is.
SHARD_COUNTS = lock_key("shard counts") & 0x7FFF_FFFF
# Shards of one count split the campaigns; shards of two counts (0/2 and 0/3, while the
# number of shards changes) would write the same campaigns at once. A sharded run holds its
# count's lock shared and refuses to run while another count's is held.
_TAKE_COUNT = text(
    """
    SELECT pg_try_advisory_lock_shared(CAST(:counts AS int), CAST(:count AS int))
       AND NOT EXISTS (
           SELECT 1 FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND objsubid = 2
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND classid = CAST(CAST(:counts AS bigint) AS oid)
             AND objid <> CAST(CAST(:count AS bigint) AS oid))
    """
)


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
        got = False
        try:
            got = connection.execute(_TAKE, self._keys).scalar_one()
            if got and self._shard is not None:
                count = {"counts": SHARD_COUNTS, "count": self._shard.count}
                got = connection.execute(_TAKE_COUNT, count).scalar_one()
            connection.commit()
        finally:
            if got:
                self._connection = connection
            else:  # its session, and any lock it took, end with it
                connection.invalidate()
                connection.close()
        return bool(got)

    def _held_by(self) -> str:
        if self._shard is None:
            return "another thulium-etl sync is running against this database"
        return (
            f"another thulium-etl sync of shard {self._shard}, an unsharded one, or one "
            f"with a number of shards other than {self._shard.count}, is running against this "
            "database"
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
