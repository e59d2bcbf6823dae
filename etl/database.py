"""The SQLAlchemy engine and the translation of connection failures into DatabaseError."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError

from etl.errors import DatabaseError

logger = logging.getLogger(__name__)

APPLICATION_NAME = "thulium-etl"


def make_engine(url: URL, *, pool_size: int = 2) -> Engine:
    """An engine that checks pooled connections before use, so a restarted server is survived."""
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=2,
        # prepare_threshold=None: no server-side prepared statements. The merge statements'
        # best plans change as the staging table and `statuses` grow; a cached generic plan
        # made them 10x slower on a re-sync of 200,000 rows.
        connect_args={
            "application_name": APPLICATION_NAME,
            "connect_timeout": 10,
            "prepare_threshold": None,
        },
    )


def describe(url: URL) -> str:
    """``host:port/database`` without user or password, for messages."""
    host = url.host or url.query.get("host") or "local socket"
    port = f":{url.port}" if url.port else ""
    return f"{host}{port}/{url.database or ''}"


def reason(exc: DBAPIError) -> str:
    """The driver's own message, first line only (SQLAlchemy appends SQL and links)."""
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


@contextlib.contextmanager
def unreachable_is_fatal(url: URL, *, doing: str) -> Iterator[None]:
    """Turn a failed connection into DatabaseError (exit code 3) with a clear message."""
    try:
        yield
    except OperationalError as exc:
        raise DatabaseError(
            f"database {describe(url)} is unreachable while {doing}: {reason(exc)}"
        ) from None
