"""One sync at a time per shard: a row of ``run_locks`` held ``FOR UPDATE`` for the whole run.

Why rows and not advisory locks: any role that may connect can take an advisory lock, and
the job's keys follow from its public source, so a BI tool's read-only role could stop every
sync. Locking a row needs the UPDATE privilege on its table, which only the job's own role
has on ``run_locks`` (``grant-read`` grants nothing on it).

A run locks its own scope's row (``all`` unsharded, ``shard I/N`` sharded) without waiting,
then makes sure no rival is running: for an unsharded run every shard, for a sharded one the
unsharded run and the shards of any other count (0/2 and 0/3 would write the same
campaigns). Rival rows are probed with ``FOR KEY SHARE SKIP LOCKED`` inside a savepoint that
is rolled back, which releases what the probe took. Two runs that start together each lock
their own row before probing, so at least one sees the other (both may refuse; neither can
miss the other). A run that holds its lock has proved that every run it rivals is dead.

The lock's connection keeps its transaction open for the run (row locks last as long as
their transaction), exempt from ``idle_in_transaction_session_timeout`` and
``transaction_timeout``. Every statement on it is bounded and yields to a stop
(:func:`etl.database.bounded`). If the server ends
it (a restart), :meth:`RunLock.ensure` takes the lock again on a new connection, or fails if
another run got there first. A run that cannot record its own outcome leaves a line on its
row (:meth:`RunLock.leave_note`) for the run that will close it.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from etl import logs
from etl.database import (
    HOLDER_COLUMNS,
    LOCK_TIMEOUT,
    Holder,
    bounded,
    holders,
    named,
    sqlstate,
)
from etl.errors import InterruptedRun, LockHeldError, RunTakenOver
from etl.schema import ALL_CAMPAIGNS
from etl.shards import Shard
from etl.stop import Stop

logger = logging.getLogger(__name__)

_ADD_SCOPE = text("INSERT INTO run_locks (scope) VALUES (:scope) ON CONFLICT (scope) DO NOTHING")
# The lock's transaction is idle for the run's length, by design: no server-wide limit on idle
# or long transactions (PostgreSQL 17's transaction_timeout) may end it.
_NO_IDLE_LIMIT = text(
    """
    SELECT set_config(name, '0', true) FROM pg_settings
    WHERE name IN ('idle_in_transaction_session_timeout', 'transaction_timeout')
    """
)
_TAKE = text("SELECT scope FROM run_locks WHERE scope = :scope FOR UPDATE NOWAIT")
# The scopes a run of :scope (:count shards, null if unsharded) must not run beside.
_RIVALS = """scope <> :scope AND (CAST(:count AS text) IS NULL
                OR split_part(scope, '/', 2) <> CAST(:count AS text))"""
_BUSY_RIVALS = text(
    f"""
    WITH free AS (SELECT scope FROM run_locks WHERE {_RIVALS} FOR KEY SHARE SKIP LOCKED)
    SELECT scope FROM run_locks WHERE {_RIVALS} AND scope NOT IN (SELECT scope FROM free)
    """
)
# A row lock's holder is the transaction whose id is in the row's xmax.
_HOLDERS = text(
    f"""
    SELECT {HOLDER_COLUMNS}, l.scope
    FROM run_locks AS l JOIN pg_stat_activity AS a ON a.backend_xid = l.xmax
    WHERE l.scope = ANY(CAST(:scopes AS text[]))
    ORDER BY l.scope, a.pid
    """
)
_NOTE = text(
    """
    UPDATE run_locks SET unrecorded_run = :run_id, unrecorded_end = :note WHERE scope = :scope
    """
)
_NOTE_TIMEOUT = text("SELECT set_config('statement_timeout', '1000', true)")


def scope_of(shard: Shard | None) -> str:
    """The ``run_locks`` row a run of ``shard`` (None: unsharded) locks."""
    return ALL_CAMPAIGNS if shard is None else f"shard {shard}"


class RunLock:
    """Holds the run's row lock on a dedicated connection while a run is in progress."""

    def __init__(self, engine: Engine, *, shard: Shard | None = None, stop: Stop) -> None:
        self._engine = engine
        self._shard = shard
        self._stop = stop
        self._keys: dict[str, object] = {
            "scope": scope_of(shard),
            "count": shard.count if shard else None,
        }
        self._connection: Connection | None = None

    def acquire(self) -> None:
        held = self._try()
        if held is not None:
            raise LockHeldError(f"{held}; this run did nothing. Try again when it has finished.")

    def ensure(self) -> None:
        """Check the lock's connection is alive; take the lock again if the server dropped it.

        While the server is down this raises the driver's error (the caller retries); once it
        answers again, the lock is taken anew or :class:`RunTakenOver` is raised.
        """
        if self._connection is not None:
            try:
                with bounded(self._connection, self._stop, doing="checking the run lock"):
                    self._connection.execute(text("SELECT 1")).scalar_one()
                return
            except DBAPIError:
                logger.warning("lost the lock's database connection; taking the lock again")
                self.release()
        held = self._try()
        if held is not None:
            raise RunTakenOver(
                f"the connection holding the run lock was lost and meanwhile {held}: this run "
                "stops here; the campaigns it recorded are kept"
            )

    def leave_note(self, run_id: int, note: str) -> None:
        """Record on the lock's row how run ``run_id`` ended, when it cannot record it in
        ``sync_runs`` (a lock on it, say): the run that closes it as abandoned says so. Ends
        the lock; best effort, within a second."""
        if self._connection is None:
            return
        note = logs.clean(note, limit=1000, codec="ascii")  # any database's encoding holds it
        try:
            doing = "leaving a note on the run lock"
            # the last word of a stopped run: a second of its own, past the stop's grace
            with bounded(self._connection, self._stop, doing=doing, after_stop=1.0):
                self._connection.execute(_NOTE_TIMEOUT)
                self._connection.execute(_NOTE, {**self._keys, "run_id": run_id, "note": note})
                self._connection.commit()
        except (DBAPIError, InterruptedRun) as exc:
            logger.warning("could not leave a note on the run lock: %s", exc)
        finally:
            self.release()

    def release(self) -> None:
        """Close the lock's connection: its transaction, and the lock with it, end."""
        if self._connection is None:
            return
        try:
            self._connection.invalidate()  # never back to the pool in a transaction
        finally:
            self._connection.close()
            self._connection = None

    def _try(self) -> str | None:
        """Take the lock; None if taken, else what holds it, in words."""
        doing = "taking the run lock"
        with self._engine.connect() as setup, bounded(setup, self._stop, doing=doing):
            setup.execute(_ADD_SCOPE, self._keys)
            setup.commit()
        connection = self._engine.connect()
        held: str | None = "the lock was not taken"
        try:
            with bounded(connection, self._stop, doing=doing):
                connection.execute(_NO_IDLE_LIMIT)
                held = self._take(connection)
        finally:
            if held is None:
                self._connection = connection
            else:  # its transaction, and any lock it took, end with it
                connection.invalidate()
                connection.close()
        return held

    def _take(self, connection: Connection) -> str | None:
        try:  # in the transaction itself: a savepoint's lock would name the savepoint in xmax
            connection.execute(_TAKE, self._keys)
        except DBAPIError as exc:
            if sqlstate(exc) != LOCK_TIMEOUT:
                raise
            connection.rollback()
            return self._held_by(connection, [scope_of(self._shard)])
        with connection.begin_nested() as probe:
            busy = list(connection.execute(_BUSY_RIVALS, self._keys).scalars())
            probe.rollback()  # releases what the probe locked
        return self._held_by(connection, busy) if busy else None

    def _held_by(self, connection: Connection, scopes: list[str]) -> str:
        found: tuple[Holder, ...] = holders(connection.execute(_HOLDERS, {"scopes": scopes}))
        what = " and ".join(scopes)
        if self._shard is None:
            who = "another thulium-etl sync is running against this database"
        else:
            who = (
                f"another thulium-etl sync of shard {self._shard}, an unsharded one, or one "
                f"with a number of shards other than {self._shard.count}, is running against "
                "this database"
            )
        nobody = "held by a session that could not be named (another sync starting this instant)"
        return f"{who}: the run lock ({what}) is {named(found, unknown=nobody)}"
