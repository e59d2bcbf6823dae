"""Helpers for the deployment-kit tests: the tools they need and a reader for the Dockerfile.

A missing tool fails the test that needs it with a message naming the package; ``.ci/run``
installs them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# How to get each tool; .ci/run does it.
TOOLS = {
    "setpriv": "apt-get install util-linux",
}


def require(tool: str) -> str:
    """The path of ``tool``; the test fails (never skips) when it is not installed."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: {TOOLS[tool]}", pytrace=False)
    return path


# --- the Dockerfile -----------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuations joined

    def all(self, instruction: str) -> list[str]:
        return [args for kind, args in self.instructions if kind == instruction]

    def last(self, instruction: str) -> str:
        found = self.all(instruction)
        assert found, f"the stage FROM {self.base} has no {instruction}"
        return found[-1]


def dockerfile_stages(path: Path) -> list[Stage]:
    """The build stages of a Dockerfile, in order."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") and not pending:
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        if pending or line:
            logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        kind, _, args = line.partition(" ")
        kind, args = kind.upper(), " ".join(args.split())
        if kind == "FROM":
            base, _, alias = args.partition(" AS ")
            stages.append(Stage(base.strip(), alias.strip() or None, []))
        else:
            assert stages, f"{line!r} before the first FROM"
            stages[-1].instructions.append((kind, args))
    return stages


def dockerfile_env(stage: Stage) -> dict[str, str]:
    """The ``ENV KEY=value ...`` settings of a stage."""
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for pair in args.split():
            key, _, value = pair.partition("=")
            env[key] = value.strip('"')
    return env
