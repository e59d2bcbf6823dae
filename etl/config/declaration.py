"""The declaration of a setting, and the loader that reads declared settings.

A group of settings is a frozen dataclass whose fields are declared with :func:`setting`;
a command's settings are a group of groups. :func:`load` reads them all from the
environment and the command line in one call; a flag is the same setting under another
name, parsed by the same parser.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, dataclass_transform

from etl.config.parsers import OneOf, Parser, Switch, utf8
from etl.errors import ConfigError

Environ = Mapping[str, str]
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Setting:
    """How one setting is given: its variable, flag, file variant, parser and help.

    A setting has a variable, a flag, or both. One with a flag only is an option of a single
    command (``runs --limit``); a ``flag`` without leading dashes is a positional argument
    (``grant-read ROLE``); a :class:`~etl.config.parsers.Switch` flag takes no value.
    """

    env: str | None
    help: str
    parse: Parser
    flag: str | None = None
    file: bool = False  # NAME_FILE may give the value instead (a Kubernetes secret volume)
    repeatable: bool = False  # the flag may be given several times; values join with ","
    shown_default: str | None = None  # the default as the docs say it, when not the value
    metavar: str | None = None  # what the flag's value is called in --help
    secret: bool = False  # taken exactly as given, surrounding spaces included; never shown

    def __post_init__(self) -> None:
        if not (self.env or self.flag):
            raise TypeError(f"the setting {self.help!r} has neither a variable nor a flag")

    @property
    def name(self) -> str:
        """What messages call it, and the key of its value given on the command line: the
        variable, else the flag."""
        return self.env or str(self.flag)

    @property
    def positional(self) -> bool:
        return bool(self.flag) and not str(self.flag).startswith("-")

    @property
    def switch(self) -> bool:
        """A flag that takes no value: given, it is on."""
        return isinstance(self.parse, Switch)

    def argument(self) -> str:
        """The flag's value as ``--help`` names it: the choices, if it has a few."""
        if self.metavar:
            return self.metavar
        if isinstance(self.parse, OneOf):
            return "{" + ",".join(self.parse.choices) + "}"
        return "VALUE"

    def sources(self) -> str:
        """The variables that give it, as the README names them (none for an option)."""
        if self.env is None:
            return ""
        names = [f"`{self.env}`"] + ([f"`{self.env}_FILE`"] if self.file else [])
        return " / ".join(names)


def setting(
    env: str | None,
    help: str,
    *,
    parse: Parser,
    default: Any = dataclasses.MISSING,
    flag: str | None = None,
    file: bool = False,
    repeatable: bool = False,
    shown_default: str | None = None,
    metavar: str | None = None,
    secret: bool = False,
) -> Any:
    """Declare a settings field: read from ``env`` (or ``env_FILE``, or ``flag``); with
    ``env=None``, from ``flag`` only.

    A ``secret`` is taken exactly as given, surrounding spaces included, and is left out of
    the group's ``repr``; any other value is read without surrounding whitespace.
    """
    declaration = Setting(
        env=env,
        help=help,
        parse=parse,
        flag=flag,
        file=file,
        repeatable=repeatable,
        shown_default=shown_default,
        metavar=metavar,
        secret=secret,
    )
    return field(default=default, repr=not secret, metadata={"setting": declaration})


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(setting,))
def group(cls: type[T]) -> type[T]:
    """A group of settings: a frozen, keyword-only dataclass of :func:`setting` fields."""
    return dataclass(frozen=True, kw_only=True)(cls)


def declared(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Setting]]:
    """The fields of a settings group, or of every group of a command, with their settings."""
    for item in dataclasses.fields(cls):
        declaration = item.metadata.get("setting")
        if declaration is not None:
            yield item, declaration
        else:
            yield from declared(_group(cls, item))


def _group(cls: type, item: dataclasses.Field[Any]) -> type:
    """A field's settings class (annotations are strings: ``from __future__``), found in the
    module that declares ``cls``."""
    names = vars(sys.modules[cls.__module__])
    group = names.get(item.type) if isinstance(item.type, str) else item.type
    if not (isinstance(group, type) and dataclasses.is_dataclass(group)):
        raise TypeError(f"{cls.__name__}.{item.name} is neither a setting nor a group")
    return group


def _raw(declared: Setting, env: Environ, flags: Mapping[str, str]) -> tuple[str | None, str]:
    """The value as given, and where it came from; an empty variable counts as unset.

    A secret is taken exactly, surrounding spaces included (from a file, without its
    trailing line ending); any other value without surrounding whitespace.
    """
    if declared.flag and flags.get(declared.name) is not None:
        return utf8(flags[declared.name], declared.flag), declared.flag
    if declared.env is None:
        return None, declared.name
    direct = _given(env, declared.env, exact=declared.secret)
    if not declared.file:
        return direct, declared.env
    file_name = _given(env, f"{declared.env}_FILE")
    if direct and file_name:
        raise ConfigError(f"set either {declared.env} or {declared.env}_FILE, not both")
    if file_name is None:
        return direct, declared.env
    source = f"{declared.env}_FILE"
    try:
        value = Path(file_name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{source}: cannot read {file_name}: {reason}") from None
    value = value.rstrip("\r\n") if declared.secret else value.strip()
    if not value:
        raise ConfigError(f"{source}: {file_name} is empty")
    return value, source


def _given(env: Environ, name: str, *, exact: bool = False) -> str | None:
    """Variable ``name``, exactly (but for a trailing line ending, as a file's: an env file
    with CRLF lines) or without surrounding whitespace; None if unset or empty."""
    value = env.get(name)
    if value is None:
        return None
    value = utf8(value, name)
    return (value.rstrip("\r\n") if exact else value.strip()) or None


def load(cls: type[T], env: Environ, flags: Mapping[str, str] | None = None) -> T:
    """Read a settings group, or every group of a command, in one call.

    ``flags`` maps a setting's :attr:`~Setting.name` to the text its flag was given. After
    the fields are read, a group's ``validate()`` (if any) checks rules between them.
    """
    flags = flags or {}
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        declaration: Setting | None = item.metadata.get("setting")
        if declaration is None:
            values[item.name] = load(_group(cls, item), env, flags)
            continue
        raw, source = _raw(declaration, env, flags)
        if raw is not None and declaration.env and source == declaration.flag:
            try:
                values[item.name] = declaration.parse(raw, declaration.env)
            except ConfigError as exc:
                raise ConfigError(f"{exc} (given as {declaration.flag})") from None
        elif raw is not None:
            values[item.name] = declaration.parse(raw, source)
        elif item.default is dataclasses.MISSING:
            name = declaration.sources().replace("`", "").replace(" / ", " (or ") + (
                ")" if declaration.file else ""
            )
            raise ConfigError(
                f"{name or declaration.name} is not set: it must give {declaration.help}"
            )
    loaded = cls(**values)
    validate = getattr(loaded, "validate", None)
    if validate is not None:
        validate()
    return loaded
