"""The outcome words are declared once (``etl/outcomes.py``): no string in ``etl/`` spells one
out as an SQL literal, and no code pastes one into text. Statements bind them as parameters;
the schema renders its CHECK constraints, default and partial index from the enums (and
``test_migrate.py`` checks those against what the migrations made)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

from etl.outcomes import CampaignOutcome, RunOutcome

ETL = Path(__file__).resolve().parent.parent / "etl"
WORDS = sorted({str(word) for word in (*CampaignOutcome, *RunOutcome)})
# 'succeeded' (an SQL literal, or a Python string in single quotes)
QUOTED_WORD = re.compile(r"'(?:" + "|".join(WORDS) + r")'")
VOCABULARIES = {"CampaignOutcome", "RunOutcome"}


def sources() -> Iterator[Path]:
    for path in sorted(ETL.rglob("*.py")):
        if path.name != "outcomes.py":  # the declaration itself
            yield path


def strings(path: Path) -> Iterator[tuple[int, str]]:
    """Every string literal of a module (f-strings whole), with its line."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    for token in tokens:
        if token.type == tokenize.STRING:
            yield token.start[0], token.string


def names_a_vocabulary(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id in VOCABULARIES for n in ast.walk(node))


def pasted(path: Path) -> Iterator[int]:
    """Lines where an outcome is formatted into text: in an f-string, or through repr()."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FormattedValue) and names_a_vocabulary(node.value):
            yield node.lineno
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "repr"
            and any(names_a_vocabulary(arg) for arg in node.args)
        ):
            yield node.lineno


def test_no_string_in_the_package_spells_out_an_outcome_word() -> None:
    found = [
        f"{path.relative_to(ETL.parent)}:{line}"
        for path in sources()
        for line, literal in strings(path)
        if QUOTED_WORD.search(literal)
    ]

    assert found == []


def test_no_outcome_is_pasted_into_text() -> None:
    found = [
        f"{path.relative_to(ETL.parent)}:{line}" for path in sources() for line in pasted(path)
    ]

    assert found == []
