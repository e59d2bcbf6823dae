"""Parsers of settings: text in, a typed value out, or a ConfigError naming where it came from.

Each parser also describes the values it accepts, for ``--help`` and the README. The URL
parsers, which carry the rules about credentials, are in :mod:`etl.config.urls`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from etl.errors import ConfigError
from etl.records import CAMPAIGN_ID
from etl.shards import MAX_SHARDS, Shard

_LIST_SEPARATORS = re.compile(r"[\s,]+")
_SHARD = re.compile(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*")


class Parser(Protocol):
    def __call__(self, raw: str, source: str) -> Any: ...

    def describe(self) -> str:
        """The accepted values, for ``--help`` and the README (empty when obvious)."""
        ...


def _shown(raw: str) -> str:
    return repr(raw[:40] + ("…" if len(raw) > 40 else ""))


def utf8(raw: str, source: str) -> str:
    """``raw`` if it is UTF-8 text. Python reads bytes of the command line and the
    environment that are not UTF-8 as lone surrogates, which no driver, socket or stream
    can take: every value is checked here as it is read, before anything is contacted."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{source} is not valid UTF-8 text") from None
    return raw


@dataclass(frozen=True)
class Text:
    """Any non-empty text."""

    def __call__(self, raw: str, source: str) -> str:
        return raw

    def describe(self) -> str:
        return ""


@dataclass(frozen=True)
class Number:
    """A finite decimal number within a sane range."""

    minimum: float
    maximum: float

    def __call__(self, raw: str, source: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{source}={_shown(raw)} is not a number") from None
        if not math.isfinite(value) or not self.minimum <= value <= self.maximum:
            raise ConfigError(f"{source}={_shown(raw)} must be {self.describe()}")
        return value

    def describe(self) -> str:
        return f"between {self.minimum:g} and {self.maximum:g}"


@dataclass(frozen=True)
class Whole:
    """A whole number within a sane range."""

    minimum: int
    maximum: int

    def __call__(self, raw: str, source: str) -> int:
        try:
            value = int(raw) if raw.strip().isascii() and len(raw) < 40 else None
        except ValueError:
            value = None
        if value is None:
            raise ConfigError(f"{source}={_shown(raw)} is not a whole number")
        if not self.minimum <= value <= self.maximum:
            raise ConfigError(f"{source}={_shown(raw)} must be {self.describe()}")
        return value

    def describe(self) -> str:
        return f"between {self.minimum} and {self.maximum}"


@dataclass(frozen=True)
class OneOf:
    """One of a few words, in any letter case."""

    choices: tuple[str, ...]

    def __call__(self, raw: str, source: str) -> str:
        value = raw.strip().upper() if self.choices[0].isupper() else raw.strip().lower()
        if value not in self.choices:
            raise ConfigError(f"{source}={_shown(value)} must be {self.describe()}")
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices)


_SWITCH = dict.fromkeys(("on", "true", "yes", "1"), True) | dict.fromkeys(
    ("off", "false", "no", "0"), False
)


@dataclass(frozen=True)
class Switch:
    """On or off: a flag that takes no value (given, it reads :attr:`ON`)."""

    ON = "on"

    def __call__(self, raw: str, source: str) -> bool:
        value = _SWITCH.get(raw.strip().lower())
        if value is None:
            raise ConfigError(f"{source}={_shown(raw)} must be on or off")
        return value

    def describe(self) -> str:
        return ""


_ROLE_NAME_BYTES = 63  # PostgreSQL's identifier limit (NAMEDATALEN - 1)


@dataclass(frozen=True)
class RoleName:
    """The name of a PostgreSQL role, taken exactly: none PostgreSQL would refuse, nor one it
    would truncate to another's."""

    def __call__(self, raw: str, source: str) -> str:
        if not raw:
            raise ConfigError(f"{source} is empty: give the name of an existing PostgreSQL role")
        if "\x00" in raw or len(raw.encode("utf-8")) > _ROLE_NAME_BYTES:
            raise ConfigError(
                f"{source} {raw[:40]!r} is not a PostgreSQL role name: at most "
                f"{_ROLE_NAME_BYTES} bytes, no NUL character"
            )
        return raw

    def describe(self) -> str:
        return f"a role name of at most {_ROLE_NAME_BYTES} bytes"


_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class SchemaName:
    """A PostgreSQL schema name the job may own: lower-case letters, digits and ``_``, not
    starting with a digit or ``pg_`` (PostgreSQL's own), at most 63 characters. The same
    name quoted or not, in SQL, in a libpq option, in a metric's label."""

    def __call__(self, raw: str, source: str) -> str:
        if not _SCHEMA_NAME.fullmatch(raw) or raw.startswith("pg_"):
            raise ConfigError(
                f"{source}={_shown(raw)} is not a schema name thulium-etl takes: {self.describe()}"
            )
        return raw

    def describe(self) -> str:
        return "a-z, 0-9 and _, not starting with a digit or pg_, at most 63 characters"


@dataclass(frozen=True)
class ExistingFile:
    """The path of a readable file."""

    def __call__(self, raw: str, source: str) -> str:
        if not Path(raw).is_file():
            raise ConfigError(f"{source}: {raw} is not a readable file")
        return raw

    def describe(self) -> str:
        return "a file"


ACTIVE = "active"  # in THULIUM_CAMPAIGNS: every campaign GET /outbounds/stats lists


@dataclass(frozen=True)
class CampaignSelection:
    """The campaigns to work on: these ids, and (``active``) every one Thulium lists active."""

    ids: tuple[str, ...]
    active: bool = False


@dataclass(frozen=True)
class CampaignIds:
    """Five-character ids and/or the word ``active``, separated by commas or whitespace;
    order kept, repeats dropped."""

    def __call__(self, raw: str, source: str) -> CampaignSelection:
        ids: dict[str, None] = {}
        active = False
        for part in _LIST_SEPARATORS.split(raw):
            if not part:
                continue
            if part.lower() == ACTIVE:
                active = True
            elif CAMPAIGN_ID.fullmatch(part):
                ids[part] = None
            else:
                raise ConfigError(
                    f"{source}: campaign id {part[:40]!r} is invalid: it must be exactly five "
                    f"characters of 0-9, A-Z, a-z (e.g. 00001), or the word {ACTIVE}"
                )
        if not ids and not active:
            raise ConfigError(f"{source}: no campaign ids given")
        return CampaignSelection(tuple(ids), active)

    def describe(self) -> str:
        return f"e.g. 00001,00002 or {ACTIVE} or {ACTIVE},00007"


@dataclass(frozen=True)
class ShardSpec:
    """``I/N``: shard I (counting from 0) of N."""

    def __call__(self, raw: str, source: str) -> Shard:
        match = _SHARD.fullmatch(raw)
        if not match:
            raise ConfigError(
                f"{source}={_shown(raw)} must look like I/N, e.g. 0/3 (shards count from 0)"
            )
        index, count = int(match[1]), int(match[2])
        if not 1 <= count <= MAX_SHARDS or index >= count:
            raise ConfigError(
                f"{source}={_shown(raw)}: the shard index must be 0 … N-1, and N between 1 "
                f"and {MAX_SHARDS}"
            )
        return Shard(index, count)

    def describe(self) -> str:
        return f"I/N, N at most {MAX_SHARDS}"


@dataclass(frozen=True)
class WritablePath:
    """A file path whose directory exists: the file is replaced at the end of every run."""

    def __call__(self, raw: str, source: str) -> str:
        path = Path(raw)
        if path.is_dir() or not path.parent.is_dir():
            raise ConfigError(f"{source}: {raw} is not a file in an existing directory")
        if path.exists() and not path.is_file():  # a FIFO, a socket, a device
            raise ConfigError(f"{source}: {raw} exists and is not a regular file")
        return raw

    def describe(self) -> str:
        return "a file path (a regular file, or none yet)"
