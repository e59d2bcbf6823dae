"""PostgreSQL roles of a test's own: created on the server, dropped with whatever they were
granted, and connections made as them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from tests.helpers.databases import libpq

#: Every test role's password: trust authentication ignores it, password authentication (a
#: testcontainers Postgres) needs it.
ROLE_PASSWORD = "reader-Pa55-ibis"


@contextlib.contextmanager
def login_role(server: URL, database: URL, name: str, *, superuser: bool = False) -> Iterator[str]:
    """A LOGIN role called ``name`` with no privileges; dropped afterwards, with what it was
    granted in ``database`` (a role cannot be dropped while it holds privileges)."""
    attributes = sql.SQL("LOGIN SUPERUSER" if superuser else "LOGIN")
    with psycopg.connect(libpq(server), autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} {} PASSWORD {}").format(
                sql.Identifier(name), attributes, sql.Literal(ROLE_PASSWORD)
            )
        )
    try:
        yield name
    finally:
        with psycopg.connect(libpq(database), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        with psycopg.connect(libpq(server), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def connect_as(database: URL, role: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection to ``database`` as ``role`` (autocommit: each statement stands alone)."""
    return psycopg.connect(libpq(database), user=role, password=ROLE_PASSWORD, autocommit=True)
