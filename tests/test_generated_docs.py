"""Documentation generated from the code stays in step with it.

The settings are declared once, in ``etl/config/``: the README's configuration table and
the environment section of every command's ``--help`` are rendered from that declaration.
The tables and views are described once, by their comments in the migrations:
``docs/tables.md`` and the dbt package's ``sources.yml`` are rendered from a migrated database.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import Engine

from etl import cli, config
from tests.helpers.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render", ROOT / "docs" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_configuration_table_is_rendered_from_the_declarations() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert _renderer().rendered_readme(readme) == readme, "README.md is stale: run `make docs`"


def test_docs_tables_md_is_rendered_from_the_comments_of_a_migrated_database(
    migrated: Engine,
) -> None:
    with migrated.connect() as conn:
        rendered = _renderer().tables_markdown(conn)

    written = (ROOT / "docs" / "tables.md").read_text(encoding="utf-8")
    assert rendered == written, "docs/tables.md is stale: run `make docs`"


def test_the_dbt_packages_sources_are_rendered_from_the_same_comments(migrated: Engine) -> None:
    with migrated.connect() as conn:
        rendered = _renderer().dbt_sources(conn)

    written = (ROOT / "integrations" / "dbt" / "models" / "sources.yml").read_text(encoding="utf-8")
    assert rendered == written, "integrations/dbt/models/sources.yml is stale: run `make docs`"


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_help_lists_every_setting_the_command_reads(command: str) -> None:
    result = run_cli(command, "--help", env={})

    assert result.code == 0
    for _, declaration in config.declared(cli.COMMANDS[command].settings):
        assert declaration.name in result.out, declaration.name
        if declaration.flag:
            assert declaration.flag in result.out, declaration.flag


def test_help_names_what_each_flag_takes() -> None:
    usage = " ".join(run_cli("sync", "--help", env={}).out.split())
    top = " ".join(run_cli("--help", env={}).out.split())

    assert "[--timeout SECONDS] [--concurrency N] [--campaign IDS] [--shard I/N]" in usage
    assert "[--log-format {text,json}]" in top


def test_a_commands_own_options_show_their_default_and_range_from_the_declaration() -> None:
    runs = " ".join(run_cli("runs", "--help", env={}).out.split())

    assert "--limit N how many runs [10; between 1 and 10000]" in runs
    assert "--json print JSON instead of a table" in runs
