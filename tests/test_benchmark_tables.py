"""The tables of benchmarks/README.md are rendered, never typed: the targets from
benchmarks/targets.py (each declared once), the figures from the results files of recorded
runs (``python -m benchmarks.render``). A README edited by hand, or a target changed without
rendering, fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import targets, w2
from benchmarks.render import README, RECORDED, render
from benchmarks.results import Results
from benchmarks.standin_process import RENAME_EVERY


def test_the_readme_tables_are_what_the_targets_and_the_recorded_runs_render_to() -> None:
    text = README.read_text()

    assert "<!-- rendered: targets -->" in text
    assert f"<!-- rendered: results {RECORDED.relative_to(README.parent.parent)} -->" in text
    assert render(text) == text, "benchmarks/README.md is out of date: python -m benchmarks.render"


def test_each_target_is_declared_once_and_held_by_a_figure_of_the_recorded_run() -> None:
    keys = [target.key for target in targets.TARGETS]
    declared = [v for v in vars(targets).values() if isinstance(v, targets.Target)]
    recorded = Results.read(RECORDED)

    assert len(set(keys)) == len(keys)
    assert sorted(t.key for t in declared) == sorted(keys)
    assert {f.target_key for f in recorded.figures if f.target_key} == set(keys)


def test_the_renamed_rows_target_is_what_w2_renames() -> None:
    assert targets.W2_RENAMED.value == w2.ROWS // RENAME_EVERY


def test_a_rendered_block_of_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    text = "<!-- rendered: nonsense -->\nold\n<!-- end rendered -->\n"

    with pytest.raises(ValueError, match="nonsense"):
        render(text, tmp_path)
