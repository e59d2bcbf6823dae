"""``deploy/grafana/thulium-etl.json``: a dashboard whose every panel gets data in the shape its
visualisation needs.

Each panel's SQL is rendered as Grafana's PostgreSQL data source would send it (template
variables, then macros: ``tests/helpers/grafana.py``) for the dashboard's default time range,
and run against the reporting sample (``tests/helpers/reporting.py``); the result must have
rows and the columns the panel's type reads.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.helpers.databases import libpq
from tests.helpers.grafana import (
    POSTGRES_PLUGIN,
    Variable,
    expand_macros,
    interpolate,
    rendered,
)
from tests.helpers.reporting import CAMPAIGNS, Sample

DASHBOARD_FILE = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "thulium-etl.json"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
PANELS: list[dict[str, Any]] = DASHBOARD["panels"]
DATASOURCE = {"type": POSTGRES_PLUGIN, "uid": "${datasource}"}
DEFAULT_INTERVAL = "1h"  # what Grafana computes for 30 days on a common screen

# Type OIDs of what the result columns may be.
TIMES = {1082, 1114, 1184}  # date, timestamp, timestamptz
NUMBERS = {20, 21, 23, 700, 701, 1700}  # int8, int2, int4, float4, float8, numeric
STRINGS = {19, 25, 1043}  # name, text, varchar
BOOLEANS = {16}


def _variable(name: str) -> dict[str, Any]:
    (found,) = [v for v in DASHBOARD["templating"]["list"] if v["name"] == name]
    return dict(found)


def _query(sample: Sample, sql: str) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The result's columns (name → type OID) and rows."""
    with psycopg.connect(libpq(sample.url), row_factory=dict_row) as conn:
        cursor = conn.execute(sql)
        assert cursor.description is not None
        columns = {column.name: column.type_code for column in cursor.description}
        return columns, cursor.fetchall()


def _panel_result(
    sample: Sample, panel: dict[str, Any]
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """What the panel's query returns with every campaign selected ("All")."""
    _, options = _query(sample, _variable("campaign")["query"])
    campaign = Variable(tuple(row["campaign_id"] for row in options), multi=True, include_all=True)
    now = dt.datetime.now(dt.UTC)
    (target,) = panel["targets"]
    sql = rendered(
        target["rawSql"],
        variables={"campaign": campaign},
        interval=panel.get("interval") or DEFAULT_INTERVAL,
        start=now - dt.timedelta(days=30),  # the dashboard's default range: now-30d … now
        end=now,
    )
    assert "$" not in sql, sql
    return _query(sample, sql)


def test_the_dashboard_has_a_postgres_data_source_and_a_campaign_variable() -> None:
    assert DASHBOARD["uid"] and DASHBOARD["title"] and isinstance(DASHBOARD["schemaVersion"], int)
    assert DASHBOARD["time"] == {"from": "now-30d", "to": "now"}
    source = _variable("datasource")
    assert (source["type"], source["query"]) == ("datasource", POSTGRES_PLUGIN)
    campaign = _variable("campaign")
    assert campaign["type"] == "query" and campaign["datasource"] == DATASOURCE
    assert campaign["multi"] and campaign["includeAll"]


def test_the_campaign_variable_lists_every_synced_campaign(reporting_sample: Sample) -> None:
    _, rows = _query(reporting_sample, _variable("campaign")["query"])

    assert [row["campaign_id"] for row in rows] == sorted(CAMPAIGNS)


def test_every_panel_queries_the_postgres_data_source_in_code() -> None:
    assert len({panel["id"] for panel in PANELS}) == len(PANELS)
    for panel in PANELS:
        assert panel["title"] and panel["type"] in {"stat", "table", "timeseries", "barchart"}
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE
            assert target["refId"] and target["rawQuery"] is True
            assert target["editorMode"] == "code"
            assert target["format"] in {"table", "time_series"}
            assert isinstance(target["rawSql"], str) and target["rawSql"].strip()


def test_the_panels_fit_the_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in PANELS:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_every_panel_gets_rows_in_the_shape_its_visualisation_needs(
    reporting_sample: Sample, panel: dict[str, Any]
) -> None:
    columns, rows = _panel_result(reporting_sample, panel)

    assert rows, f"{panel['title']}: no rows in the sample"
    (target,) = panel["targets"]
    values = [name for name, kind in columns.items() if kind in NUMBERS and name != "time"]
    if target["format"] == "time_series" or panel["type"] == "timeseries":
        # a time column (a time, or epoch seconds from $__timeGroup), sorted; numbers; and
        # optionally a text column `metric` that names the series
        assert columns.get("time") in TIMES | NUMBERS, columns
        times = [row["time"] for row in rows]
        assert times == sorted(times)
        assert values, columns
        assert set(columns) <= {"time", "metric", *values}, columns
        if "metric" in columns:
            assert columns["metric"] in STRINGS
    elif panel["type"] == "stat":
        assert values, columns
    elif panel["type"] == "barchart":
        for transformation in panel.get("transformations", []):
            if transformation["id"] == "groupingToMatrix":
                options = transformation["options"]
                assert columns[options["rowField"]] in STRINGS
                assert columns[options["columnField"]] in STRINGS
                assert columns[options["valueField"]] in NUMBERS
                break
        else:  # bars along a text (or time) field, one series per number
            assert any(kind in STRINGS | TIMES for kind in columns.values()), columns
            assert values, columns
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override["matcher"]
        if matcher["id"] == "byName":
            assert matcher["options"] in columns, f"{panel['title']}: {matcher['options']}"


def test_the_progress_panel_draws_each_campaigns_daily_completion(reporting_sample: Sample) -> None:
    (panel,) = [p for p in PANELS if p["title"] == "Campaign progress"]

    _, rows = _panel_result(reporting_sample, panel)

    series: dict[str, list[float]] = {}
    for row in rows:
        series.setdefault(row["metric"], []).append(row["completion_percent"])
    assert series["00001"] == [0.0, 25.0, 60.0, 90.0]
    assert all(row["time"].time() == dt.time() for row in rows)  # each day at 00:00 UTC


def test_grafanas_macros_and_variables_expand_as_its_postgres_data_source_does() -> None:
    start = dt.datetime(2026, 11, 1, 0, 0, 0, 123000, tzinfo=dt.UTC)
    end = dt.datetime(2026, 11, 30, 12, 30, tzinfo=dt.UTC)
    picked = Variable(("00001", "it's"), multi=True)
    one = Variable(("it's",))

    sql = interpolate(
        "WHERE c IN ($campaign) AND d IN (${campaign}) AND e = '$one' GROUP BY $__interval",
        {"campaign": picked, "one": one, "__interval": Variable(("1d",))},
    )
    expanded = expand_macros(
        "SELECT $__timeGroupAlias(t, 1d), $__timeGroup(t, 1w) AS w, $__time(t) "
        "WHERE $__timeFilter(t) AND t < $__timeTo() AND t > $__timeFrom()",
        start=start,
        end=end,
    )

    assert sql == (
        "WHERE c IN ('00001','it''s') AND d IN ('00001','it''s') AND e = 'it''s' GROUP BY 1d"
    )
    assert expanded == (
        'SELECT floor(extract(epoch from t)/86400)*86400 AS "time", '
        "floor(extract(epoch from t)/604800)*604800 AS w, "
        't AS "time" '
        "WHERE t BETWEEN '2026-11-01T00:00:00.123Z' AND '2026-11-30T12:30:00Z' "
        "AND t < '2026-11-30T12:30:00Z' AND t > '2026-11-01T00:00:00.123Z'"
    )
    with pytest.raises(ValueError, match="unknown macro"):
        expand_macros("SELECT $__nothing(t)", start=start, end=end)
