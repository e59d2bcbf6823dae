"""A dashboard's SQL as Grafana's PostgreSQL data source would send it to the database.

Two steps, as in Grafana:

1. Template variables (``$campaign``, ``${campaign}``, ``[[campaign]]``, and the built-in
   ``$__interval``/``$__interval_ms``) are replaced in the browser by
   ``SqlDatasource.interpolateVariable``: a multi-value or include-all variable becomes its
   values as quoted literals joined by commas; a single value is inserted as it is, with
   ``'`` doubled. Names that are not variables (the macros) are left alone.
2. Macros (``$__timeFilter(col)``, ``$__timeGroupAlias(col, 1d)``, …) are expanded by the
   backend as ``pkg/tsdb/grafana-postgresql-datasource/macros.go`` does: times as RFC 3339 in
   UTC, time groups as epoch seconds (``floor(extract(epoch from col)/86400)*86400``), which
   Grafana reads back as times. An unknown macro is an error there, and here.

The time groups' seconds are printed as Go's ``%v`` prints a float64.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

#: How Grafana names the PostgreSQL data source's plugin (since 10.2.3; ``postgres`` before).
POSTGRES_PLUGIN = "grafana-postgresql-datasource"


@dataclass(frozen=True)
class Variable:
    """A template variable's current value(s)."""

    values: tuple[str, ...]
    multi: bool = False
    include_all: bool = False

    def interpolated(self) -> str:
        if len(self.values) == 1 and not (self.multi or self.include_all):
            return self.values[0].replace("'", "''")
        return ",".join("'" + value.replace("'", "''") + "'" for value in self.values)


# templateSrv's pattern: $name, [[name(:format)]], ${name(.path)(:format)}
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}"
)
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")
_INTERVAL = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNITS = {
    "ms": dt.timedelta(milliseconds=1),
    "s": dt.timedelta(seconds=1),
    "m": dt.timedelta(minutes=1),
    "h": dt.timedelta(hours=1),
    "d": dt.timedelta(days=1),
    "w": dt.timedelta(weeks=1),
}


def interval_ms(interval: str) -> int:
    """``1d`` → 86400000, as Grafana's ``gtime.ParseInterval`` reads it."""
    match = _INTERVAL.fullmatch(interval.strip().strip("'"))
    if not match:
        raise ValueError(f"error parsing interval {interval}")
    return int(match[1]) * _UNITS[match[2]] // dt.timedelta(milliseconds=1)


def interpolate(sql: str, variables: dict[str, Variable]) -> str:
    """Step 1: template variables replaced, everything else left as it is."""

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[4]
        if name not in variables:
            return match[0]
        if match[3] or match[5] or match[6]:
            raise ValueError(f"{match[0]}: variable formats are not emulated here")
        return variables[name].interpolated()

    return _VARIABLE.sub(replace, sql)


def _rfc3339nano(moment: dt.datetime) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC time: fraction without trailing zeros, ``Z``."""
    moment = moment.astimezone(dt.UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def _go_float(value: float) -> str:
    """Go's ``%v`` of a float64: the shortest digits, in ``e`` form from an exponent of 6."""
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    scientific = len(digits) + exponent - 1
    if -4 <= scientific < 6:
        return format(Decimal(repr(value)).normalize(), "f")
    mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{'+' if scientific >= 0 else '-'}{abs(scientific):02d}"


def expand_macros(sql: str, *, start: dt.datetime, end: dt.datetime) -> str:
    """Step 2: the macros of Grafana's PostgreSQL data source, for the range start … end."""
    whole = sql

    def expand(match: re.Match[str]) -> str:
        name = match[1]
        args = [arg.strip() for arg in match[2].split(",")]
        if name == "__timeGroup":  # pre-5.3 dashboards: followed by ',' it means the alias
            after = whole.find(match[0]) + len(match[0])
            if after < len(whole) and whole[after] == ",":
                name = "__timeGroupAlias"
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{_rfc3339nano(start)}' AND '{_rfc3339nano(end)}'"
        if name == "__timeFrom":
            return f"'{_rfc3339nano(start)}'"
        if name == "__timeTo":
            return f"'{_rfc3339nano(end)}'"
        if name == "__unixEpochFilter":
            first, last = int(start.timestamp()), int(end.timestamp())
            return f"{args[0]} >= {first} AND {args[0]} <= {last}"
        if name in {"__timeGroup", "__timeGroupAlias", "__unixEpochGroup", "__unixEpochGroupAlias"}:
            if len(args) < 2:
                raise ValueError(f"macro {name} needs time column and interval")
            seconds = _go_float(interval_ms(args[1]) / 1000)
            column = f"extract(epoch from {args[0]})" if "Epoch" not in name else f"({args[0]})"
            group = f"floor({column}/{seconds})*{seconds}"
            return group + (' AS "time"' if name.endswith("Alias") else "")
        raise ValueError(f"unknown macro {name!r}")

    return _MACRO.sub(expand, sql)


def rendered(
    sql: str,
    *,
    variables: dict[str, Variable],
    interval: str,
    start: dt.datetime,
    end: dt.datetime,
) -> str:
    """``sql`` as the database receives it from Grafana."""
    builtins = {
        "__interval": Variable((interval,)),
        "__interval_ms": Variable((str(interval_ms(interval)),)),
    }
    return expand_macros(interpolate(sql, {**variables, **builtins}), start=start, end=end)
