"""``make docs``: render the documentation that is generated from the code.

- The README's configuration table, from the settings declared in ``etl/config.py``.
- ``docs/tables.md``, from the comments on the tables, views and columns of a database
  migrated to the head revision (the migrations write them). The database is a throw-away one,
  created on the server of ``DATABASE_URL``, else of ``ETL_TEST_DATABASE_URL``, else on an
  embedded Postgres started for the purpose, and dropped afterwards.

Tests fail when either is stale.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL, make_url

from etl import cli, config, grants, migrate

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TABLES = ROOT / "docs" / "tables.md"
START = "<!-- settings: rendered by `make docs` from etl/config.py; do not edit by hand -->"
END = "<!-- /settings -->"


def settings_table() -> str:
    return config.markdown_table(
        {name: [config.LogSettings, command.settings] for name, command in cli.COMMANDS.items()}
    )


def rendered_readme(text: str) -> str:
    """``text`` with the section between the markers replaced by the current table."""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md lacks the markers {START!r} … {END!r}")
    return pattern.sub(lambda _: f"{START}\n{settings_table()}\n{END}", text)


# -- docs/tables.md: the schema as its comments describe it -------------------------------------

_INTRO = """\
# Tables, views and functions

<!-- rendered by `make docs` from the comments in a migrated database; do not edit by hand -->

What thulium-etl keeps in PostgreSQL, described by the comments on its tables, views and
columns (Metabase shows the same text as field descriptions; `\\d+ name` in psql too). All
timestamps are `timestamp with time zone`, in UTC. The views (and the functions) are the
reporting layer: start there. [`queries.md`](queries.md) answers common questions with them,
and `thulium-etl grant-read ROLE` lets a BI tool's role read them (and the tables) and change
nothing. The job's bookkeeping ({bookkeeping}), which no role but the job's own may use, is
left out.
""".format(bookkeeping=" and ".join(f"`{name}`" for name in grants.UNREADABLE))

_RELATIONS = text(
    """
    SELECT c.oid, c.relname, c.relkind, obj_description(c.oid, 'pg_class') AS comment
    FROM pg_class AS c
    WHERE c.relnamespace = CAST(current_schema() AS regnamespace)
      AND c.relkind IN ('r', 'v') AND c.relname <> ALL(CAST(:bookkeeping AS text[]))
    ORDER BY c.relname
    """
)
_COLUMNS = text(
    """
    SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
           col_description(a.attrelid, a.attnum) AS comment
    FROM pg_attribute AS a
    WHERE a.attrelid = :oid AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
    """
)
_KEYS = text(
    """
    SELECT con.contype,
           array_agg(a.attname ORDER BY k.ord) AS columns,
           CAST(con.confrelid AS regclass)::text AS referenced,
           array_agg(r.attname ORDER BY k.ord) AS referenced_columns
    FROM pg_constraint AS con
    CROSS JOIN LATERAL unnest(con.conkey, coalesce(con.confkey, con.conkey))
        WITH ORDINALITY AS k (attnum, refnum, ord)
    JOIN pg_attribute AS a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
    LEFT JOIN pg_attribute AS r ON r.attrelid = con.confrelid AND r.attnum = k.refnum
    WHERE con.conrelid = :oid AND con.contype IN ('p', 'f')
    GROUP BY con.oid, con.contype, con.confrelid
    ORDER BY con.contype DESC, columns
    """
)


# The schema's functions: each one's arguments, the columns it returns, and its comment.
_FUNCTIONS = text(
    """
    SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments,
           obj_description(p.oid, 'pg_proc') AS comment,
           array_agg(a.name ORDER BY a.n) FILTER (WHERE a.mode = 't') AS columns,
           array_agg(format_type(a.type, NULL) ORDER BY a.n) FILTER (WHERE a.mode = 't')
               AS types
    FROM pg_proc AS p
    CROSS JOIN LATERAL unnest(p.proargnames, p.proallargtypes, p.proargmodes)
        WITH ORDINALITY AS a (name, type, mode, n)
    WHERE p.pronamespace = CAST(current_schema() AS regnamespace)
    GROUP BY p.oid, p.proname
    ORDER BY p.proname
    """
)


def _cell(value: str | None) -> str:
    """Text safe in a Markdown table cell."""
    return (value or "").replace("\n", " ").replace("|", "\\|")


def _names(columns: list[str]) -> str:
    quoted = ", ".join(f"`{name}`" for name in columns)
    return quoted if len(columns) == 1 else f"({quoted})"


def _relation(connection: Connection, oid: int, name: str, comment: str | None) -> list[str]:
    lines = [f"### `{name}`", "", _cell(comment) or "*(no comment)*", ""]
    keys = connection.execute(_KEYS, {"oid": oid}).all()
    for kind, columns, referenced, referenced_columns in keys:
        if kind == "p":
            lines.append(f"- primary key: {_names(columns)}")
        elif len(columns) == 1:
            lines.append(f"- `{columns[0]}` → `{referenced}.{referenced_columns[0]}`")
        else:
            lines.append(f"- {_names(columns)} → `{referenced}` {_names(referenced_columns)}")
    if keys:
        lines.append("")
    lines += ["| column | type | description |", "|---|---|---|"]
    for column, kind, not_null, text_ in connection.execute(_COLUMNS, {"oid": oid}):
        shown = f"{kind}, not null" if not_null else kind
        lines.append(f"| `{column}` | {shown} | {_cell(text_)} |")
    return [*lines, ""]


def tables_markdown(connection: Connection) -> str:
    """``docs/tables.md``: every view, then every table, then every function of the schema,
    with its columns."""
    relations = connection.execute(_RELATIONS, {"bookkeeping": list(grants.UNREADABLE)}).all()
    lines = [_INTRO]
    for title, kind in (("Views", "v"), ("Tables", "r")):
        lines += [f"## {title}", ""]
        for oid, name, relkind, comment in relations:
            if relkind == kind:
                lines += _relation(connection, oid, name, comment)
    lines += ["## Functions", ""]
    for name, arguments, comment, columns, types in connection.execute(_FUNCTIONS):
        lines += [f"### `{name}({arguments})`", "", _cell(comment) or "*(no comment)*", ""]
        lines += ["| column | type |", "|---|---|"]
        lines += [f"| `{c}` | {t} |" for c, t in zip(columns, types, strict=True)]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


@contextlib.contextmanager
def _server() -> Iterator[URL]:
    """A Postgres server on which a throw-away database may be created."""
    given = os.environ.get("DATABASE_URL") or os.environ.get("ETL_TEST_DATABASE_URL")
    if given:
        yield make_url(given).set(drivername="postgresql+psycopg")
        return
    from standin.embedded import embedded_postgres

    print("starting an embedded Postgres …", file=sys.stderr)
    with (
        tempfile.TemporaryDirectory(prefix="thulium-etl-docs-") as data,
        embedded_postgres(Path(data)) as url,
    ):
        yield url


@contextlib.contextmanager
def _migrated_database(server: URL) -> Iterator[Connection]:
    """A connection to a new database at the head revision; the database is dropped after."""
    name = f"thulium_etl_docs_{uuid.uuid4().hex[:8]}"
    admin_url = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        engine = create_engine(server.set(database=name))
        try:
            migrate.upgrade(engine)
            with engine.connect() as connection:
                yield connection
        finally:
            engine.dispose()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main() -> int:
    README.write_text(rendered_readme(README.read_text(encoding="utf-8")), encoding="utf-8")
    print("rendered the configuration table of README.md", file=sys.stderr)
    with _server() as server, _migrated_database(server) as connection:
        TABLES.write_text(tables_markdown(connection), encoding="utf-8")
    print(f"rendered {TABLES.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
