"""``make docs``: render the documentation that is generated from the code.

- The README's configuration table, from the settings declared in ``etl/config/``, and its
  tables of exit codes and of the Kubernetes podFailurePolicy, from ``etl/exits.py``.
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
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL, make_url

from etl import cli, config, exits, grants, migrate
from etl.exits import ExitCode
from etl.outcomes import CampaignOutcome, RunOutcome

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TABLES = ROOT / "docs" / "tables.md"


def settings_table() -> str:
    return config.markdown_table(
        {name: [config.LogSettings, command.settings] for name, command in cli.COMMANDS.items()}
    )


def exit_codes_table() -> str:
    rows = ["| code | meaning |", "|---|---|"]
    rows += [f"| {int(code)} | {_cell(code.meaning)} |" for code in ExitCode]
    return "\n".join(rows)


def pod_failure_policy_table() -> str:
    """The podFailurePolicy of the nightly Job and the sharded one, rule by rule, with why."""
    rows = [
        "| pod failed with | nightly Job | sharded Job | why |",
        "|---|---|---|---|",
        "| condition `DisruptionTarget` (evicted, preempted, node drained) | Ignore | Ignore | "
        "not the job's fault: a new pod, not counted as a failure. It comes first because such "
        f"a pod also exits {int(ExitCode.TERMINATED)}. |",
    ]
    for retry, codes in exits.by_retry().items():
        for code in codes:
            what = f"{int(code)} ({code.label})"
            rows.append(
                f"| {_cell(what)} | {retry.nightly} | {retry.sharded} | {_cell(code.why)} |"
            )
    rows.append("| anything else (137: OOM-killed) | Count | Count | Kubernetes' default. |")
    per_run = ", ".join(str(int(code)) for code in exits.by_retry()[exits.Retry.NOT_THIS_RUN])
    return "\n".join(rows) + (
        "\n\nIn the sharded Job, FailJob would stop the other shards mid-run, so the per-run "
        f"outcomes ({per_run}) fail only their own shard "
        "(`FailIndex`); the Job is still marked failed at the end."
    )


#: The README's generated sections: name in the markers → what renders it.
SECTIONS = {
    "settings": ("etl/config/", settings_table),
    "exit-codes": ("etl/exits.py", exit_codes_table),
    "pod-failure-policy": ("etl/exits.py", pod_failure_policy_table),
}


def rendered_readme(text: str) -> str:
    """``text`` with each section between its markers replaced by its current rendering."""
    for name, (source, render) in SECTIONS.items():
        start = f"<!-- {name}: rendered by `make docs` from {source}; do not edit by hand -->"
        end = f"<!-- /{name} -->"
        found = re.search(re.escape(start) + ".*?" + re.escape(end), text, re.S)
        if found is None:
            raise SystemExit(f"README.md lacks the markers {start!r} … {end!r}")
        text = f"{text[: found.start()]}{start}\n{render()}\n{end}{text[found.end() :]}"
    return text


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


# -- integrations/dbt/models/sources.yml: the same schema, for dbt ------------------------------

DBT_SOURCES = ROOT / "integrations" / "dbt" / "models" / "sources.yml"
DBT_SOURCE = "thulium_etl"
#: The dbt var that names the schema the job writes (THULIUM_DB_SCHEMA's, public by default).
DBT_SCHEMA_VAR = "thulium_etl_schema"
# A nightly job's data: a warning when a night was missed (26 h leaves room for a slow run and
# the hour the clocks change), an error when two were.
_NIGHTLY = {
    "warn_after": {"count": 26, "period": "hour"},
    "error_after": {"count": 50, "period": "hour"},
}
# When the data that matters was last written: a campaign's last successful sync, and the
# last successful run (of any shard).
_FRESHNESS: dict[str, dict[str, object]] = {
    "campaigns": {"loaded_at_field": "last_synced_at", "freshness": _NIGHTLY},
    "sync_runs": {
        "loaded_at_field": "finished_at",
        "freshness": {**_NIGHTLY, "filter": f"outcome = '{RunOutcome.SUCCEEDED}'"},
    },
}
# What the database's own keys do not say: the keys of the views, the references of the
# history (which has no foreign keys, by design), and the vocabularies of text columns.
_VIEW_KEYS = {
    "current_statuses": ("campaign_id", "status_id"),
    "status_mix": ("campaign_id", "system_status"),
    "campaign_progress_daily": ("campaign_id", "day"),
    "campaign_freshness": ("campaign_id",),
    "sync_run_campaigns": ("run_id", "campaign_id"),
}
_REFERENCES = {
    ("status_history", "campaign_id"): ("campaigns", "campaign_id"),
    ("status_history", "system_status"): ("system_statuses", "code"),
    ("status_history", "opened_by_run"): ("sync_runs", "run_id"),
    ("status_history", "closed_by_run"): ("sync_runs", "run_id"),
    ("current_statuses", "campaign_id"): ("campaigns", "campaign_id"),
    ("sync_run_campaigns", "run_id"): ("sync_runs", "run_id"),
}
_CAMPAIGN_OUTCOMES = [str(outcome) for outcome in CampaignOutcome]
_VOCABULARIES = {
    ("campaigns", "last_attempt_outcome"): _CAMPAIGN_OUTCOMES,
    ("campaign_freshness", "last_attempt_outcome"): _CAMPAIGN_OUTCOMES,
    ("sync_run_campaigns", "outcome"): _CAMPAIGN_OUTCOMES,
    ("sync_runs", "outcome"): [str(outcome) for outcome in RunOutcome],
    ("status_changes", "change"): ["added", "changed", "deleted", "revived", "backfilled"],
}


def _dbt_relation(connection: Connection, oid: int, name: str, comment: str | None) -> Any:
    """One source table: its description, freshness, key and columns with their tests."""
    keys = connection.execute(_KEYS, {"oid": oid}).all()
    primary = [tuple(columns) for kind, columns, _, _ in keys if kind == "p"]
    key = primary[0] if primary else _VIEW_KEYS.get(name)
    references = {
        **{(name, c[0]): (r.split(".")[-1], rc[0]) for k, c, r, rc in keys if k == "f"},
        **_REFERENCES,
    }
    columns = []
    for column, _, not_null, text_ in connection.execute(_COLUMNS, {"oid": oid}):
        tests: list[object] = []
        if key == (column,):
            tests.append("unique")
        if not_null:
            tests.append("not_null")
        if (name, column) in references:
            to, field = references[(name, column)]
            tests.append(
                {"relationships": {"to": f"source('{DBT_SOURCE}', '{to}')", "field": field}}
            )
        if (name, column) in _VOCABULARIES:
            tests.append({"accepted_values": {"values": _VOCABULARIES[(name, column)]}})
        columns.append(
            {"name": column, "description": text_ or "", **({"data_tests": tests} if tests else {})}
        )
    relation: dict[str, object] = {"name": name, "description": comment or ""}
    relation.update(_FRESHNESS.get(name, {}))
    if key is not None and len(key) > 1:
        relation["data_tests"] = [{"unique_combination": {"columns": list(key)}}]
    return {**relation, "columns": columns}


def dbt_sources(connection: Connection) -> str:
    """``integrations/dbt/models/sources.yml``: every table and view of the schema as a dbt
    source, described by its comments, with the job's guarantees as tests."""
    import yaml

    relations = connection.execute(_RELATIONS, {"bookkeeping": list(grants.UNREADABLE)}).all()
    sources = {
        "version": 2,
        "sources": [
            {
                "name": DBT_SOURCE,
                "description": "What thulium-etl copies from Thulium into PostgreSQL, and the "
                "history of its runs. Written by the job only; read, never write.",
                "schema": f"{{{{ var('{DBT_SCHEMA_VAR}', 'public') }}}}",
                "loader": "thulium-etl",
                "tables": [
                    _dbt_relation(connection, oid, name, comment)
                    for oid, name, _, comment in relations
                ],
            }
        ],
    }

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: object) -> bool:
            return True  # each list written out where it is used: no &id001 to follow

    header = (
        "# Rendered by `make docs` from the comments of a migrated database (and the\n"
        "# declarations in docs/render.py); do not edit by hand.\n"
    )
    body = yaml.dump(sources, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)
    return header + body


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
    print(f"rendered the tables of README.md: {', '.join(SECTIONS)}", file=sys.stderr)
    with _server() as server, _migrated_database(server) as connection:
        TABLES.write_text(tables_markdown(connection), encoding="utf-8")
        DBT_SOURCES.write_text(dbt_sources(connection), encoding="utf-8")
    print(
        f"rendered {TABLES.relative_to(ROOT)} and {DBT_SOURCES.relative_to(ROOT)}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
