"""The reporting sample: four nights of real syncs of three campaigns, which the tests of the
views, of ``docs/queries.md`` and of the Grafana dashboard read.

Each night the stand-in serves that night's statuses and ``GET /outbounds/stats``, and
``thulium-etl sync`` runs through the real CLI with ``THULIUM_CAMPAIGNS=active``. After each
night but the last, every timestamp in the database moves back one day, so the nights fall on
the four days up to today, as if the job had run nightly (the job itself takes its times from
the database's clock). Then:

- ``00001`` (:data:`CHANGING`): night 2 renames ``101`` and moves ``102`` to another
  system_status, and Thulium stops listing ``103``; night 3 adds ``105``; night 4 lists ``103``
  again. Night 2 syncs twice (progress 20 %, then 25 %).
- ``00002`` (:data:`FAILING`): unchanged, until its statuses answer HTTP 500 on night 4.
- ``00003`` (:data:`DROPPED`): listed active on nights 1 and 2 only, so synced no more; one of
  its statuses has a system_status Thulium does not document.

Also: the fenced ``sql`` blocks of a Markdown document, and psql's ``:'name'`` variables.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import Fault, StandIn
from tests.helpers.cli import make_env, run_cli
from tests.helpers.data import status
from tests.helpers.databases import DATA_TABLES

CHANGING, FAILING, DROPPED = "00001", "00002", "00003"
CAMPAIGNS = (CHANGING, FAILING, DROPPED)
UNDOCUMENTED = "CALLBACK_AI"


_FIRST = [
    status("101", "TO_CALL", None, "Nowy"),
    status("102", "CALL", 7, "Oddzwonić"),
    status("103", "NO_CALL", None, "Nie dzwonić"),
    status("104", "ABANDONED_AFTER_N_TRIES", None, "Porzucony"),
]
_SECOND = [
    status("101", "TO_CALL", None, "Nowy kontakt"),
    status("102", "CALL_NO_SOONER_THAN", 7, "Oddzwonić"),
    status("104", "ABANDONED_AFTER_N_TRIES", None, "Porzucony"),
]
_THIRD = [*_SECOND, status("105", "CALL", 12, "Umówione spotkanie")]
_FOURTH = [*_THIRD, _FIRST[2]]

#: What ``00001`` is served each night.
CHANGING_BY_NIGHT = (_FIRST, _SECOND, _THIRD, _FOURTH)
FAILING_STATUSES = [
    status("201", "TO_CALL", None, "Nowy"),
    status("202", "CALL", None, "Dzwonić"),
    status("203", "CALL", 3, "Dzwonić ponownie"),
    status("204", "NO_CALL", None, "Nie dzwonić"),
]
DROPPED_STATUSES = [
    status("301", "TO_CALL", None, "Nowy"),
    status("302", "MY_RECORD", None, "Mój rekord"),
    status("303", UNDOCUMENTED, None, "Oddzwoni asystent"),
]

#: ``GET /outbounds/stats`` of each sync: night → syncs → campaign → (records, percent done).
STATS: tuple[tuple[dict[str, tuple[int, float]], ...], ...] = (
    ({CHANGING: (1000, 0.0), FAILING: (400, 10.0), DROPPED: (250, 50.0)},),
    (
        {CHANGING: (1000, 20.0), FAILING: (400, 15.0), DROPPED: (250, 60.0)},
        {CHANGING: (1000, 25.0), FAILING: (400, 15.0), DROPPED: (250, 60.0)},
    ),
    ({CHANGING: (1200, 60.0), FAILING: (400, 30.0)},),
    ({CHANGING: (1200, 90.0), FAILING: (400, 40.0)},),
)
NIGHTS = len(STATS)


@dataclass(frozen=True)
class Sample:
    """The synced database, and when each night's runs started (after the moves back)."""

    engine: Engine
    url: URL
    runs: tuple[tuple[int, dt.datetime], ...]  # (run_id, started_at), oldest first

    def night_of(self, run_id: int) -> int:
        """The night (0-based) a run belongs to."""
        started = dict(self.runs)[run_id]
        today = self.runs[-1][1]
        return NIGHTS - 1 - round((today - started) / dt.timedelta(days=1))

    def between_nights(self, night: int) -> dt.datetime:
        """An instant after night ``night``'s runs and before the next night's."""
        return max(started for run_id, started in self.runs if self.night_of(run_id) == night) + (
            dt.timedelta(hours=12)
        )


def _serve(api: StandIn, night: int, stats: dict[str, tuple[int, float]]) -> None:
    api.set_statuses(CHANGING, CHANGING_BY_NIGHT[night])
    api.set_statuses(FAILING, FAILING_STATUSES)
    api.set_statuses(DROPPED, DROPPED_STATUSES)
    api.set_permanent_fault(FAILING, Fault.status(500) if night == NIGHTS - 1 else None)
    api.set_stats(
        [
            {"id": campaign_id, "records_count": records, "completion_percent": percent}
            for campaign_id, (records, percent) in stats.items()
        ]
    )


def _move_back_a_day(engine: Engine) -> None:
    """Every timestamp of every table one day earlier: the next sync happens a night later."""
    with engine.begin() as conn:
        columns = conn.execute(
            text(
                "SELECT c.table_name, array_agg(c.column_name::text) "
                "FROM information_schema.columns AS c JOIN information_schema.tables AS t "
                "USING (table_schema, table_name) "
                "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
                "AND c.data_type = 'timestamp with time zone' GROUP BY c.table_name"
            )
        ).all()
        for table, names in columns:
            moves = ", ".join(f"{name} = {name} - interval '1 day'" for name in names)
            conn.execute(text(f"UPDATE {table} SET {moves}"))


def _away_from_midnight() -> None:
    """Two syncs of one night must fall on the same UTC day: never start them at midnight."""
    now = dt.datetime.now(dt.UTC)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if midnight - now < dt.timedelta(seconds=20):
        time.sleep((midnight - now).total_seconds() + 1)


def sync_sample(api: StandIn, db_url: URL, engine: Engine) -> Sample:
    """Run the four nights against ``engine``'s database (migrated; emptied first)."""
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(DATA_TABLES)}"))
    env = make_env(api, db_url, ["active"])
    _away_from_midnight()
    for night, syncs in enumerate(STATS):
        for stats in syncs:
            _serve(api, night, stats)
            result = run_cli("sync", env=env)
            assert result.code == (1 if night == NIGHTS - 1 else 0), result.err
        if night < NIGHTS - 1:
            _move_back_a_day(engine)
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT run_id, started_at FROM sync_runs ORDER BY run_id"))
        return Sample(engine=engine, url=db_url, runs=tuple((r, s) for r, s in runs))


# -- SQL in Markdown ---------------------------------------------------------------------------

_SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```$", re.S | re.M)
_HEADING = re.compile(r"^#+ (.*)$", re.M)
_PSQL_VARIABLE = re.compile(r":'([A-Za-z_][A-Za-z0-9_]*)'")


def sql_blocks(markdown: str) -> dict[str, str]:
    """Each fenced ``sql`` block of ``markdown`` by the heading it comes under."""
    blocks: dict[str, str] = {}
    for match in _SQL_BLOCK.finditer(markdown):
        headings = _HEADING.findall(markdown, 0, match.start())
        heading = headings[-1] if headings else ""
        assert heading not in blocks, f"two sql blocks under {heading!r}"
        blocks[heading] = match.group(1)
    return blocks


def psql_variables(sql: str) -> set[str]:
    """The names of the ``:'name'`` variables in ``sql``."""
    return set(_PSQL_VARIABLE.findall(sql))


def with_variables(sql: str, values: dict[str, str]) -> str:
    """``sql`` with each ``:'name'`` replaced by its value as a string literal, as psql does."""

    def literal(match: re.Match[str]) -> str:
        return "'" + values[match.group(1)].replace("'", "''") + "'"

    return _PSQL_VARIABLE.sub(literal, sql)
