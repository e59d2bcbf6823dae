"""Every setting, declared once: variable, ``_FILE`` variant, flag, type, default, range, help.

A group of settings is a frozen dataclass whose fields are declared with :func:`setting`,
and that declaration is the only place a setting is described. :func:`load` reads a whole
command's settings (a dataclass of groups) from the environment and the command line in one
call; a flag is the same setting under another name, parsed by the same parser. The CLI
builds its flags and the environment section of ``--help`` from the declarations, and
``make docs`` renders the README's configuration table from them (a test keeps it current).

A bad value raises :class:`~etl.errors.ConfigError` naming the variable or flag, never the
value of a secret.

The modules, by job: :mod:`~etl.config.parsers` and :mod:`~etl.config.urls` turn text into
values; :mod:`~etl.config.declaration` declares a setting and loads declared ones;
:mod:`~etl.config.groups` holds the settings themselves; :mod:`~etl.config.render` renders
them for ``--help`` and the README. What the rest of the package uses is imported here.
"""

from __future__ import annotations

from etl.config.declaration import Setting, declared, group, load, setting
from etl.config.groups import (
    ApiSettings,
    CampaignSettings,
    CheckCommand,
    DatabaseCommand,
    DatabaseSettings,
    FetchSettings,
    GrantReadCommand,
    LogSettings,
    MetricsSettings,
    RetryPolicy,
    RunsCommand,
    ShardSettings,
    SyncCommand,
    WriteSettings,
)
from etl.config.parsers import CampaignSelection, Switch
from etl.config.render import flag_help, help_section, markdown_table

__all__ = [
    "ApiSettings",
    "CampaignSelection",
    "CampaignSettings",
    "CheckCommand",
    "DatabaseCommand",
    "DatabaseSettings",
    "FetchSettings",
    "GrantReadCommand",
    "LogSettings",
    "MetricsSettings",
    "RetryPolicy",
    "RunsCommand",
    "Setting",
    "ShardSettings",
    "Switch",
    "SyncCommand",
    "WriteSettings",
    "declared",
    "flag_help",
    "group",
    "help_section",
    "load",
    "markdown_table",
    "setting",
]
