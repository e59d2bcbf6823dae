"""Figures, the table they print as, and ``.bench/results.json``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import say
from benchmarks.targets import Target


@dataclass
class Figure:
    """One line of the table. ``ok`` is None for context, else whether its target was met."""

    name: str
    value: float | int | None
    unit: str
    target: str = "-"  # the target (or, for context, a note) as the table shows it
    ratio: float | None = None
    ratio_of: str = ""
    ok: bool | None = None
    target_key: str | None = None  # the Target it is held to, if any

    @classmethod
    def held_to(
        cls,
        target: Target,
        name: str,
        value: float | int | None,
        unit: str,
        *,
        compared: float | None,
        valid: bool = True,
        note: str = "",
        ratio: float | None = None,
        ratio_of: str = "",
    ) -> Figure:
        """A figure whose ``compared`` number (the value, or a ratio of it) must meet
        ``target``; not ``valid`` (the run failed) misses it whatever the number. With
        ``ratio_of`` and no ``ratio``, the ratio shown is ``compared`` to the target's value."""
        if ratio is None and ratio_of and compared is not None:
            ratio = compared / target.value
        return cls(
            name,
            value,
            unit,
            f"{target} {note}".strip(),
            ratio,
            ratio_of,
            valid and target.met(compared),
            target.key,
        )

    def cells(self) -> list[str]:
        if self.value is None:
            value = "n/a"
        elif isinstance(self.value, int):
            value = f"{self.value:,} {self.unit}".strip()
        elif abs(self.value) >= 1000:
            value = f"{self.value:,.0f} {self.unit}".strip()
        else:
            value = f"{self.value:.2f} {self.unit}".strip()
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f}{self.ratio_of}"
        ok = {True: "yes", False: "NO", None: "-"}[self.ok]
        return [self.name, value, self.target, ratio, ok]


HEADER = ["figure", "value", "target", "ratio", "ok?"]


def table(figures: list[Figure]) -> str:
    """The figures as an aligned text table."""
    rows = [f.cells() for f in figures]
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    line = "-+-".join("-" * w for w in widths)
    out = [" | ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True)), line]
    out += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(x.rstrip() for x in out)


@dataclass
class Results:
    """The figures of a run, in order, and the details behind them."""

    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        mark = {True: "ok", False: "MISSED", None: "info"}[figure.ok]
        say(f"  => {' | '.join(figure.cells()[:4])} [{mark}]")

    def missed(self) -> list[str]:
        return [f.name for f in self.figures if f.ok is False]

    def write(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {"figures": [asdict(f) for f in self.figures], "details": self.details},
                indent=2,
                default=str,
            )
        )

    @classmethod
    def read(cls, path: Path) -> Results:
        data = json.loads(path.read_text())
        return cls([Figure(**f) for f in data["figures"]], data["details"])
