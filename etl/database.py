"""The SQLAlchemy engine, and what each database error means for a run.

Driver errors are mapped here and nowhere else. psycopg raises very different failures as
the same ``OperationalError`` (a lost connection, a lock timeout, a value too large for an
index), so errors are told apart by SQLSTATE: only a lost connection or a timeout is worth
another attempt, a value the database refuses costs the campaigns it came with, and anything
else (a read-only standby, a full disk, a missing table) stops the run with exit code 3.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError

from etl.config import DatabaseSettings
from etl.errors import DatabaseError, InterruptedRun
from etl.stop import Stop

logger = logging.getLogger(__name__)

APPLICATION_NAME = "thulium-etl"
#: Seconds a stop waits for the database to end a cancelled statement before it cuts the
#: connection: Postgres ignores a cancel while a COPY waits for data stuck on the way.
CUT_AFTER = 2.0
_CONNECTION_DEFAULTS: dict[str, object] = {
    "application_name": APPLICATION_NAME,
    "connect_timeout": 10,
    # A server that vanishes (a host gone, a network partition) sends nothing, not even a
    # reset: without these, a job waiting for a result would wait for the kernel's default
    # two hours of keepalive silence. Now a dead peer is noticed within about a minute,
    # whether the job waits for an answer or for its data to be acknowledged.
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}


class Failure(enum.Enum):
    """What a database error means for the work that raised it."""

    LOST = "connection lost"  # retry on a new connection
    TIMEOUT = "timed out"  # lock or statement timeout, deadlock: retry
    DATA = "refused the data"  # this batch's data: retry campaign by campaign
    FATAL = "failed"  # nothing this run can fix: stop with exit code 3


_CONNECTION_LOST = {"57P01", "57P02", "57P03"}  # admin or crash shutdown, not yet accepting
LOCK_TIMEOUT = "55P03"  # lock_timeout ran out, or NOWAIT found the lock taken
_TIMEOUTS = {LOCK_TIMEOUT, "57014", "40001", "40P01"}  # lock and statement timeouts, conflicts
# Data exceptions, integrity violations, program limits (an index row too large), a raise
# in a trigger: the values of this batch, not the database, are the problem.
_DATA_CLASSES = {"22", "23", "54", "P0"}
_HINTS = {
    "25006": "is DATABASE_URL pointing at a read-only standby (a failover)?",
    "55P03": "another session holds a lock the job needs (THULIUM_DB_LOCK_TIMEOUT)",
    "57014": "a statement ran past THULIUM_DB_STATEMENT_TIMEOUT",
    "53100": "the database server's disk is full",
    "42501": "is DATABASE_URL's user the owner of the tables, the user that runs migrate?",
}


def sqlstate(exc: DBAPIError) -> str | None:
    state = getattr(exc.orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def classify(exc: DBAPIError) -> Failure:
    state = sqlstate(exc)
    if exc.connection_invalidated:
        return Failure.LOST
    if state is None:
        return Failure.LOST if isinstance(exc, OperationalError) else Failure.FATAL
    if state.startswith("08") or state in _CONNECTION_LOST:
        return Failure.LOST
    if state in _TIMEOUTS:
        return Failure.TIMEOUT
    if state[:2] in _DATA_CLASSES:
        return Failure.DATA
    return Failure.FATAL


@contextlib.contextmanager
def driver_errors(statement: str) -> Iterator[None]:
    """Raise what psycopg raises on its own connection (COPY, composed SQL) as SQLAlchemy
    does, so the same classification and messages apply to it."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def make_engine(settings: DatabaseSettings, *, pool_size: int = 2) -> Engine:
    """An engine whose sessions never wait without limit, and that survives a server restart.

    Pooled connections are checked before use (``pool_pre_ping``). The timeouts and the
    ``search_path`` (the job's schema alone: every name the job's SQL uses is one of its
    schema's, and a temporary table its session's) are libpq ``options``, added to any the
    URL already carries.
    """
    url = settings.url
    timeouts = (
        f"-c lock_timeout={_ms(settings.lock_timeout)} "
        f"-c statement_timeout={_ms(settings.statement_timeout)} "
        f'-c search_path="{settings.schema}"'  # a SchemaName: nothing in it to escape
    )
    given = url.query.get("options")
    options = f"{given} {timeouts}" if isinstance(given, str) and given else timeouts
    return create_engine(
        url.update_query_dict({"options": options}),
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=2,
        # prepare_threshold=None: no server-side prepared statements. The merge statements'
        # best plans change as the staging table and `statuses` grow; a cached generic plan
        # made them 10x slower on a re-sync of 200,000 rows.
        connect_args={
            "prepare_threshold": None,
            # Whatever the database's encoding: the server converts, and a character it cannot
            # hold is an error of the statement (SQLSTATE 22P05), not of the driver.
            "client_encoding": "utf8",
            # defaults a DATABASE_URL's own ?application_name=, ?keepalives_idle=, … override
            **{k: v for k, v in _CONNECTION_DEFAULTS.items() if k not in url.query},
        },
    )


def server_codec(connection: Connection) -> str:
    """The Python codec of the database's encoding (the server reports it at connect), to
    escape before writing what it cannot hold. SQL_ASCII stores the bytes it is sent (the
    job's UTF-8); an encoding Python lacks (MULE_INTERNAL) gets ASCII, which any can hold."""
    import psycopg
    from psycopg._encodings import pg2pyenc  # psycopg's table: PostgreSQL names to Python's

    name = _driver(connection).info.parameter_status("server_encoding") or "SQL_ASCII"
    if name == "SQL_ASCII":
        return "utf-8"
    try:
        return pg2pyenc(name.encode())
    except psycopg.NotSupportedError:
        return "ascii"


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def quoted(connection: Connection, name: str) -> str:
    """``name`` as an SQL identifier, quoted as PostgreSQL itself quotes it."""
    return str(connection.execute(text("SELECT quote_ident(:name)"), {"name": name}).scalar_one())


def describe(url: URL) -> str:
    """``host:port/database`` without user or password, for messages."""
    host = url.host or url.query.get("host") or "local socket"
    port = f":{url.port}" if url.port else ""
    return f"{host}{port}/{url.database or ''}"


def reason(exc: DBAPIError) -> str:
    """The driver's own message, first line only, with a hint for the common causes and
    what the job learnt meanwhile (who held the lock it waited for)."""
    text = str(exc.orig) if exc.orig is not None else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    hint = _HINTS.get(sqlstate(exc) or "")
    said = f"{first} ({hint})" if hint else first
    return "; ".join([said, *getattr(exc, "__notes__", ())])


def failure_message(url: URL, exc: DBAPIError, *, doing: str, attempts: int = 1) -> str:
    if attempts > 1:
        return f"database {describe(url)} failed while {doing}, {attempts} attempts: {reason(exc)}"
    what = "is unreachable" if classify(exc) is Failure.LOST else "failed"
    return f"database {describe(url)} {what} while {doing}: {reason(exc)}"


@contextlib.contextmanager
def database_errors(engine: Engine, *, doing: str) -> Iterator[None]:
    """Turn any driver error into DatabaseError (exit code 3) with a one-line message."""
    try:
        yield
    except DBAPIError as exc:
        raise DatabaseError(failure_message(engine.url, exc, doing=doing)) from None


@dataclass(frozen=True)
class Holder:
    """A session that holds a lock the job wanted, as ``pg_stat_activity`` shows it (the
    server hides when another user's transaction began unless the job's role may read all
    statistics)."""

    pid: int
    user: str | None
    application: str | None
    since: datetime | None

    def __str__(self) -> str:
        since = f"since {self.since.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z" if self.since else ""
        facts = [
            f"user {self.user or 'unknown'}",
            f"application {self.application!r}" if self.application else "no application name",
            since or "since an unknown time",
        ]
        return f"pid {self.pid} ({', '.join(facts)})"


#: The columns of ``pg_stat_activity`` (as ``a``) a :class:`Holder` is made of, in order.
HOLDER_COLUMNS = "a.pid, a.usename, a.application_name, a.xact_start"


def holders(rows: Iterable[Sequence[Any]]) -> tuple[Holder, ...]:
    return tuple(Holder(*row[:4]) for row in rows)


def named(
    found: Sequence[Holder], *, unknown: str = "held by a session that has ended since"
) -> str:
    """``held by pid 42 (…)``, or ``unknown`` when no holder could be found."""
    if not found:
        return unknown
    return "held by " + "; ".join(map(str, found))


#: Seconds a statement waits for a lock before the job logs who holds it.
LOCK_NOTICE_AFTER = 1.0
# What the session `pid` waits for, and the sessions it waits behind.
_WAITING_BEHIND = text(
    f"""
    SELECT {HOLDER_COLUMNS}, w.what
    FROM (
        SELECT coalesce(CAST(CAST(l.relation AS regclass) AS text), l.locktype) AS what
        FROM pg_locks AS l WHERE l.pid = :pid AND NOT l.granted LIMIT 1
    ) AS w
    CROSS JOIN pg_stat_activity AS a
    WHERE a.pid = ANY(pg_blocking_pids(:pid))
    ORDER BY a.pid
    """
)


@contextlib.contextmanager
def bounded(
    connection: Connection, stop: Stop, *, doing: str, after_stop: float | None = None
) -> Iterator[None]:
    """Every wait of the block's statements on ``connection`` is bounded and explained.

    - A stop cancels the statement in progress (:func:`_stoppable`). If the stop came before
      the block (a stopped run recording its outcome), the block has what is left of the
      stop's grace (:data:`etl.stop.GRACE`), or ``after_stop`` seconds if given: then its
      statement in progress is cancelled as by a stop. A failure after a stop is
      :class:`InterruptedRun`.
    - A statement that waits :data:`LOCK_NOTICE_AFTER` for a lock logs who holds it, and a
      lock timeout's message names them.

    Open the transaction inside the block, so that its COMMIT is bounded too.
    """
    seen: list[Holder] = []
    ended = threading.Event()
    notice = threading.Timer(
        LOCK_NOTICE_AFTER,
        _notice_waits,
        (connection.engine, _driver(connection).info.backend_pid, doing, seen, ended),
    )
    notice.daemon = True
    notice.start()
    try:
        within = None
        if stop.is_set():
            within = stop.grace_left() if after_stop is None else after_stop
        with _stoppable(connection, stop, within=within):
            yield
    except DBAPIError as exc:
        if sqlstate(exc) == LOCK_TIMEOUT and seen:
            exc.add_note(named(seen))
        if stop.is_set():
            raise InterruptedRun(f"stopped while {doing}: {reason(exc)}") from exc
        raise
    finally:
        ended.set()
        notice.cancel()


def _notice_waits(
    engine: Engine, backend: int, doing: str, seen: list[Holder], ended: threading.Event
) -> None:
    """Log what the session ``backend`` waits for, and who holds it (on a thread), unless
    the block that waited has ended meanwhile."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(_WAITING_BEHIND, {"pid": backend}).all()
    except DBAPIError as exc:
        logger.debug("could not tell who holds the lock the job waits for: %s", reason(exc))
        return
    if not rows or ended.is_set():
        return
    seen.extend(holders(rows))
    logger.warning(
        "%s: waiting for a lock on %s %s; the wait ends at THULIUM_DB_LOCK_TIMEOUT, or at a stop",
        doing,
        rows[0][-1],
        named(seen),
    )


def _driver(connection: Connection) -> Any:
    import psycopg

    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


@contextlib.contextmanager
def _stoppable(connection: Connection, stop: Stop, *, within: float | None) -> Iterator[None]:
    """While the block runs, a stop (or, ``within`` seconds given, the end of them) cancels
    the statement in progress on ``connection``.

    If the statement has not ended :data:`CUT_AFTER` seconds later (a COPY waiting for data
    that is stuck on the way, a network gone silent), the connection is cut, so the call
    fails at once, and its server session is ended from a new connection, so that its locks
    go with it and the run can still record its outcome. A stop never waits on the database.
    """
    import psycopg

    driver = _driver(connection)
    backend = driver.info.backend_pid
    done = threading.Event()
    ending = threading.Lock()  # the block ends, or the connection is cut: never both

    def interrupt() -> None:
        if done.is_set():
            return
        try:
            driver.cancel_safe(timeout=CUT_AFTER)
        except psycopg.Error as exc:
            logger.warning("could not cancel the statement in progress: %s", exc)
        if done.wait(CUT_AFTER):
            return
        with ending:
            if not done.is_set():
                _cut(connection, driver, backend)

    with stop.cancelling(interrupt, within=within):
        try:
            yield
        finally:
            with ending:
                done.set()


def _cut(connection: Connection, driver: Any, backend: int) -> None:
    """Shut the connection down under the driver, and end its server session."""
    import psycopg

    logger.warning(
        "the database did not end the cancelled statement within %gs: cutting the "
        "connection and ending its session (pid %d)",
        CUT_AFTER,
        backend,
    )
    with contextlib.suppress(psycopg.Error, OSError):  # already closed: nothing to cut
        _shut_down(driver.fileno())
    try:
        with connection.engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    except DBAPIError as exc:
        logger.warning(
            "could not end the session (pid %d): %s; its locks last until the server "
            "notices the connection is gone",
            backend,
            reason(exc),
        )


def _shut_down(fd: int) -> None:
    """Shut a socket down under the driver that owns it, which then fails its call."""
    with socket.socket(fileno=os.dup(fd)) as sock:
        sock.shutdown(socket.SHUT_RDWR)
