"""Documentation rendered from the declarations: the environment section of ``--help``, and
the README's configuration table (``make docs``; a test keeps it current)."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from etl.config.declaration import Setting, declared


def _default(item: dataclasses.Field[Any], declaration: Setting) -> str:
    if declaration.shown_default is not None:
        return declaration.shown_default
    if item.default is dataclasses.MISSING:
        return "required"
    value = item.default
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _facts(item: dataclasses.Field[Any], declaration: Setting) -> str:
    """``[default; accepted values]``, as ``--help`` adds them to a setting's help."""
    obvious = declaration.positional or declaration.switch
    default = "" if obvious else _default(item, declaration)
    return "[" + "; ".join(x for x in (default, declaration.parse.describe()) if x) + "]"


def flag_help(item: dataclasses.Field[Any], declaration: Setting) -> str:
    """A flag's help: for a setting's flag, its variable (which the environment section
    describes); for a command's own option, the whole of it."""
    if declaration.env:
        return f"{declaration.help} ({declaration.env})"
    facts = _facts(item, declaration)
    return declaration.help if facts == "[]" else f"{declaration.help} {facts}"


def help_section(commands: Sequence[type]) -> str:
    """The environment section of ``--help`` for settings of ``commands``, each once."""
    lines = [
        "environment (a flag overrides its variable; NAME_FILE reads NAME from a file;",
        "[default; accepted values]):",
    ]
    seen: set[str] = set()
    for command in commands:
        for item, declaration in declared(command):
            if declaration.env is None or declaration.env in seen:
                continue
            seen.add(declaration.env)
            names = declaration.env + ("[_FILE]" if declaration.file else "")
            if declaration.flag:
                names += f", {declaration.flag}"
            text = f"{declaration.help} {_facts(item, declaration)}"
            lines.append(f"  {names}")
            lines.extend(
                textwrap.wrap(text, 92, initial_indent="      ", subsequent_indent="      ")
            )
    return "\n".join(lines)


def _markdown(cell: str) -> str:
    """Text safe in a Markdown table cell (no column breaks, no stray HTML tags)."""
    return cell.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def markdown_table(commands: Mapping[str, Sequence[type]]) -> str:
    """The README's configuration table: every setting of ``commands`` (a command's name →
    the settings it reads), with the commands that read it."""
    rows = [
        "| variable | flag | meaning | default | accepted | read by |",
        "|---|---|---|---|---|---|",
    ]
    readers: dict[str, list[str]] = {}
    found: dict[str, tuple[dataclasses.Field[Any], Setting]] = {}
    for name, groups in commands.items():
        for group in groups:
            for item, declaration in declared(group):
                readers.setdefault(declaration.name, []).append(name)
                found.setdefault(declaration.name, (item, declaration))
    for key, (item, declaration) in found.items():
        flag = f"`{declaration.flag}`" if declaration.flag else ""
        if declaration.repeatable:
            flag += " (repeatable)"
        if declaration.positional:
            flag += " (argument)"
        used = readers[key]
        read_by = "every command" if len(used) == len(commands) else ", ".join(used)
        cells = (
            declaration.sources(),
            flag,
            declaration.help,
            _default(item, declaration),
            declaration.parse.describe(),
            read_by,
        )
        rows.append("| " + " | ".join(_markdown(cell) for cell in cells) + " |")
    return "\n".join(rows)
