"""Renders the tables of ``benchmarks/README.md`` between its markers::

    <!-- rendered: targets -->              every target of benchmarks/targets.py
    <!-- rendered: results FILE -->         a run's figures, from its results file
    <!-- rendered: compare BEFORE AFTER --> two runs' main figures side by side
    ...
    <!-- end rendered -->

FILE, BEFORE and AFTER are results files (``.bench/results.json`` of a run, copied into the
repository), named from the repository root. Usage: ``python -m benchmarks.render`` rewrites
the README; ``--record`` first copies the last run's ``.bench/results.json`` to
``benchmarks/results.json``; ``--check`` changes nothing and exits 1 if the README is not
what it renders to (``tests/test_benchmark_tables.py`` checks the same).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, ROOT
from benchmarks.results import Figure, Results, table
from benchmarks.targets import TARGETS

README = ROOT / "benchmarks" / "README.md"
RECORDED = ROOT / "benchmarks" / "results.json"
_BLOCK = re.compile(
    r"(?P<open><!-- rendered: (?P<what>[^>]*?) -->\n)(?P<body>.*?)(?P<close><!-- end rendered -->)",
    re.S,
)


def render(readme: str, root: Path = ROOT) -> str:
    """``readme`` with every rendered block made anew from its sources under ``root``."""

    def block(match: re.Match[str]) -> str:
        kind, *files = match["what"].split()
        runs = [Results.read(root / name) for name in files]
        if kind == "targets" and not runs:
            body = targets_table()
        elif kind == "results" and len(runs) == 1:
            body = results_block(runs[0])
        elif kind == "compare" and len(runs) == 2:
            body = compare_table(*runs)
        else:
            raise ValueError(f"benchmarks/README.md: no such rendered block: {match['what']!r}")
        return f"{match['open']}{body}{match['close']}"

    return _BLOCK.sub(block, readme)


def targets_table() -> str:
    rows = ["| target | the figure must be | what it means |", "|---|---|---|"]
    rows += [f"| `{t.key}` | {t} | {t.meaning} |" for t in TARGETS]
    return "\n".join(rows) + "\n"


def heading(details: dict[str, Any]) -> str:
    """Where and when a run was measured."""
    m = details["machine"]
    start, end = (f"{m[f'load_average_at_{when}'][0]:.1f}" for when in ("start", "end"))
    return (
        f"Run at `{m['git']}`: {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, "
        f"{m['postgres'].split(' on ')[0]}{', dlt ' + m['dlt'] if m['dlt'] else ''}; "
        f"{details['seconds']:.0f} s; load average {start} at the start, {end} at the end."
    )


def results_block(run: Results) -> str:
    return f"{heading(run.details)}\n\n```\n{table(run.figures)}\n```\n"


def _value(figure: Figure | None) -> str:
    if figure is None:
        return "-"
    _, value, _, ratio, _ = figure.cells()
    return value if ratio == "-" else f"{value} ({ratio})"


def compare_table(before: Results, after: Results) -> str:
    """The main figures (not the indented details) of ``after``, with ``before``'s."""
    was = {f.name: f for f in before.figures}
    rows = ["| figure | before | after | target | met |", "|---|---|---|---|---|"]
    for figure in after.figures:
        if figure.name.startswith(" "):
            continue
        old = was.get(figure.name)
        met = {True: "yes", False: "NO", None: ""}
        ok = "" if figure.ok is None else f"{met[old.ok] if old else '-'} / {met[figure.ok]}"
        target = figure.target if figure.target_key else ""
        rows.append(f"| {figure.name} | {_value(old)} | {_value(figure)} | {target} | {ok} |")
    return f"Before: {heading(before.details)}\n\nAfter: {heading(after.details)}\n\n" + (
        "\n".join(rows) + "\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.render", description=__doc__)
    p.add_argument(
        "--record",
        action="store_true",
        help=f"copy {RESULTS.relative_to(ROOT)} to {RECORDED.relative_to(ROOT)} first",
    )
    p.add_argument("--check", action="store_true", help="exit 1 if the README is out of date")
    args = p.parse_args(argv)
    if args.record:
        shutil.copyfile(RESULTS, RECORDED)
    text = README.read_text()
    rendered = render(text)
    if args.check:
        if rendered != text:
            print(f"{README.relative_to(ROOT)} is out of date: python -m benchmarks.render")
            return 1
        return 0
    README.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
