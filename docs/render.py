"""``make docs``: render the documentation that is generated from the code.

The README's configuration table comes from the settings declared in ``etl/config.py``; a
test fails when the README and the declarations disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from etl import cli, config

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
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


def main() -> int:
    README.write_text(rendered_readme(README.read_text(encoding="utf-8")), encoding="utf-8")
    print("rendered the configuration table of README.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
