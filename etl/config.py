"""Every setting, declared once: variable, ``_FILE`` variant, flag, type, default, range, help.

A group of settings is a frozen dataclass whose fields are declared with :func:`setting`,
and that declaration is the only place a setting is described. :func:`load` reads a whole
command's settings (a dataclass of groups) from the environment and the command line in one
call; a flag is the same setting under another name, parsed by the same parser. The CLI
builds its flags and the environment section of ``--help`` from the declarations, and
``make docs`` renders the README's configuration table from them (a test keeps it current).

A bad value raises :class:`~etl.errors.ConfigError` naming the variable or flag, never the
value of a secret.
"""

from __future__ import annotations

import dataclasses
import math
import re
import textwrap
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, dataclass_transform

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from etl.errors import ConfigError
from etl.records import CAMPAIGN_ID
from etl.shards import MAX_SHARDS, Shard

Environ = Mapping[str, str]
T = TypeVar("T")

_LIST_SEPARATORS = re.compile(r"[\s,]+")
_PSYCOPG_DRIVERS = {"postgres", "postgresql", "postgresql+psycopg"}
_URL_PATH = re.compile(r"[A-Za-z0-9._~/-]*")  # a plain path: nothing a server could reinterpret
_SHARD = re.compile(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*")


# -- parsers: text in, a typed value out, or ConfigError naming the source ------------------


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


@dataclass(frozen=True)
class ExistingFile:
    """The path of a readable file."""

    def __call__(self, raw: str, source: str) -> str:
        if not Path(raw).is_file():
            raise ConfigError(f"{source}: {raw} is not a readable file")
        return raw

    def describe(self) -> str:
        return "a file"


def _http_url(raw: str, source: str, *, invalid: str, credentials: str) -> urllib.parse.SplitResult:
    """``raw`` split, if it is an http(s) URL with a host and a valid port, and no user or
    password (refused before any of it is shown, saying ``credentials``: what to use instead);
    else the configuration error ``{source}={raw!r} {invalid}``.

    Any ``@`` counts as credentials: a password holding ``/``, ``?`` or ``#`` ends the host
    part before its ``@``, and a URL split there would print the rest of it.
    """
    if "@" in raw:
        raise ConfigError(f"{source} must not carry credentials: {credentials}")
    try:
        parts = urllib.parse.urlsplit(raw)
    except ValueError:  # its message may quote the host part
        raise ConfigError(f"{source} {invalid}") from None
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:
        raise ConfigError(f"{source}={raw!r} is not a valid URL: {exc}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname or not port_ok:
        raise ConfigError(f"{source}={raw!r} {invalid}")
    return parts


@dataclass(frozen=True)
class BaseUrl:
    """A plain ``http(s)://host[:port]/path`` to which ``/outbounds/<id>/statuses`` is added.

    Anything a server or proxy could read otherwise is refused: a ``?`` or ``#`` (even with
    nothing after it) would turn the appended path into a query or a fragment, so every
    campaign would fetch the same URL; so would ``..`` or encoded characters in the path.
    """

    def __call__(self, raw: str, source: str) -> str:
        expected = "expected a plain base such as https://<system>.thulium.com/api"
        parts = _http_url(
            raw,
            source,
            invalid=f"is not a valid URL: {expected}",
            credentials="use THULIUM_USER/THULIUM_PASSWORD",
        )
        if "?" in raw or "#" in raw:
            raise ConfigError(
                f"{source}={raw!r} must not have a query string or fragment: {expected}"
            )
        segments = parts.path.split("/")
        if not _URL_PATH.fullmatch(parts.path) or "." in segments or ".." in segments:
            raise ConfigError(
                f"{source}={raw!r}: the path may hold only letters, digits, '-', '.', '_', '~' "
                f"and '/', with no '.' or '..' segments: {expected}"
            )
        return raw.rstrip("/")

    def describe(self) -> str:
        return "http(s)://host[:port]/path, no query, fragment or credentials"


# How SQLAlchemy's make_url finds the user name and password: the first "@" after a user name
# free of ":" and "/" ends them. Each of "@ / ? # [ ]" in them must be percent-encoded (RFC
# 3986, and libpq, end the user and host part at the first "/", "?" or "#").
_SQLALCHEMY_USERINFO = re.compile(
    r"[^:]*://(?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?(?P<rest>.*)", re.S
)
_ENCODED_IN_USERINFO = re.compile(r"[@/?#\[\]]")
_PERCENT_ENCODE = (
    "percent-encode the user name and password (@ as %40, / as %2F, ? as %3F, # as %23, "
    "[ as %5B, ] as %5D; & as %26 in a password in the query string), e.g. with Python's "
    "urllib.parse.quote(password, safe='')"
)


def _unencoded_credentials(raw: str) -> bool:
    """Whether a user name or password holds a character that must be percent-encoded.

    SQLAlchemy takes the first ``@`` for the end of the password, and a user name with a
    ``/`` for the host and database: either way part of a password would become the host
    or the database name, which messages print. So a raw ``@`` may stand only after the user
    and password, or in the query string (an option's value), and the user name and password
    must be free of ``/ ? # [ ]``.
    """
    found = _SQLALCHEMY_USERINFO.match(raw)
    if found is None:
        return False  # not a URL at all: make_url says so
    userinfo = (found["user"] or "") + (found["password"] or "")
    return bool(_ENCODED_IN_USERINFO.search(userinfo)) or "@" in found["rest"].partition("?")[0]


@dataclass(frozen=True)
class DatabaseUrl:
    """A PostgreSQL URL, always with the psycopg 3 driver.

    Query parameters are libpq's (``sslmode``, ``options``, …); an unknown one is refused
    here rather than by the driver at connection time. A URL whose password SQLAlchemy
    could split (a raw ``@``, say) is refused without a word of its value.
    """

    def __call__(self, raw: str, source: str) -> URL:
        example = "expected postgresql://user:password@host:5432/db"
        if _unencoded_credentials(raw):
            raise ConfigError(f"{source} is ambiguous: {_PERCENT_ENCODE}")
        try:
            url = make_url(raw)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            raise ConfigError(f"{source} is not a valid URL: {example}") from None
        if url.drivername not in _PSYCOPG_DRIVERS:
            raise ConfigError(
                f"{source} uses {url.drivername!r}: only PostgreSQL through psycopg 3 is "
                "supported (postgresql://, postgres:// or postgresql+psycopg://)"
            )
        if url.port is not None and not 0 < url.port < 65536:
            raise ConfigError(f"{source} has an invalid port {url.port}")
        unknown = sorted(set(url.query) - _libpq_options())
        if unknown and "password" in url.query:  # perhaps a password split at a raw &
            raise ConfigError(f"{source} has an unknown connection option: {_PERCENT_ENCODE}")
        if unknown:
            raise ConfigError(
                f"{source} has unknown connection option(s) {', '.join(unknown)}: the query "
                "string takes libpq's options, e.g. sslmode, connect_timeout, options"
            )
        return url.set(drivername="postgresql+psycopg")

    def describe(self) -> str:
        return "postgresql://user:password@host:5432/db[?libpq options]"


def _libpq_options() -> set[str]:
    from psycopg import pq

    return {option.keyword.decode() for option in pq.Conninfo.get_defaults()}


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


# -- the declaration -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Setting:
    """How one setting is given: its variable, flag, file variant, parser and help."""

    env: str
    help: str
    parse: Parser
    flag: str | None = None
    file: bool = False  # NAME_FILE may give the value instead (a Kubernetes secret volume)
    repeatable: bool = False  # the flag may be given several times; values join with ","
    shown_default: str | None = None  # the default as the docs say it, when not the value
    metavar: str | None = None  # what the flag's value is called in --help
    secret: bool = False  # taken exactly as given, surrounding spaces included; never shown

    def argument(self) -> str:
        """The flag's value as ``--help`` names it: the choices, if it has a few."""
        if self.metavar:
            return self.metavar
        if isinstance(self.parse, OneOf):
            return "{" + ",".join(self.parse.choices) + "}"
        return "VALUE"

    def sources(self) -> str:
        names = [f"`{self.env}`"] + ([f"`{self.env}_FILE`"] if self.file else [])
        return " / ".join(names)


def setting(
    env: str,
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
    """Declare a settings field: read from ``env`` (or ``env_FILE``, or ``flag``).

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
    """A field's settings class (annotations are strings here: ``from __future__``)."""
    group = globals().get(item.type) if isinstance(item.type, str) else item.type
    if not (isinstance(group, type) and dataclasses.is_dataclass(group)):
        raise TypeError(f"{cls.__name__}.{item.name} is neither a setting nor a group")
    return group


def _raw(declared: Setting, env: Environ, flags: Mapping[str, str]) -> tuple[str | None, str]:
    """The value as given, and where it came from; an empty variable counts as unset.

    A secret is taken exactly, surrounding spaces included (from a file, without its
    trailing line ending); any other value without surrounding whitespace.
    """
    if declared.flag and flags.get(declared.env) is not None:
        return utf8(flags[declared.env], declared.flag), declared.flag
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

    ``flags`` maps a setting's variable name to the value its flag was given. After the
    fields are read, a group's ``validate()`` (if any) checks rules between them.
    """
    flags = flags or {}
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        declaration: Setting | None = item.metadata.get("setting")
        if declaration is None:
            values[item.name] = load(_group(cls, item), env, flags)
            continue
        raw, source = _raw(declaration, env, flags)
        if raw is not None and source == declaration.flag:
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
            raise ConfigError(f"{name} is not set: it must give {declaration.help}")
    loaded = cls(**values)
    validate = getattr(loaded, "validate", None)
    if validate is not None:
        validate()
    return loaded


# -- the groups ------------------------------------------------------------------------------

_SECONDS_ANY_WAIT = Number(0, 3_600)


@group
class LogSettings:
    """How the job logs (read before anything else, so every error is logged as asked)."""

    format: str | None = setting(
        "THULIUM_LOG_FORMAT",
        "log line format",
        parse=OneOf(("text", "json")),
        default=None,
        flag="--log-format",
        shown_default="text on a terminal, else json",
    )
    level: str = setting(
        "THULIUM_LOG_LEVEL",
        "the least severe events logged",
        parse=OneOf(("DEBUG", "INFO", "WARNING", "ERROR")),
        default="INFO",
    )


@group
class DatabaseSettings:
    """The target database, and how long any statement may wait or run."""

    url: URL = setting(
        "DATABASE_URL",
        "the PostgreSQL URL, e.g. postgresql://user:password@host:5432/db; postgres:// and "
        "postgresql+psycopg:// mean psycopg 3 too. libpq options go in the query string "
        "(?sslmode=require); a ?password= is a secret like the URL's password. A user name or "
        "password must be percent-encoded (@ as %40, / as %2F, ? as %3F, # as %23): a URL "
        "that would split them is refused",
        parse=DatabaseUrl(),
        file=True,
    )
    lock_timeout: float = setting(
        "THULIUM_DB_LOCK_TIMEOUT",
        "seconds any statement of the job may wait for a lock another session holds",
        parse=Number(0.001, 86_400),
        default=60.0,
    )
    statement_timeout: float = setting(
        "THULIUM_DB_STATEMENT_TIMEOUT",
        "seconds any statement of the job may run",
        parse=Number(0.001, 86_400),
        default=600.0,
    )


@group
class ApiSettings:
    """Everything the Thulium client needs to make one request."""

    base_url: str = setting(
        "THULIUM_BASE_URL",
        "the API root, e.g. https://acme.thulium.com/api; the job appends "
        "/outbounds/<id>/statuses. A plain http(s)://host[:port]/path: no credentials, no ? "
        "or # (not even an empty one), no . or .. segments or encoded characters",
        parse=BaseUrl(),
    )
    user: str = setting("THULIUM_USER", "the Thulium API user", parse=Text())
    password: str = setting(
        "THULIUM_PASSWORD",
        "the API user's password, taken exactly as given, surrounding spaces included (but for "
        "a trailing line ending); sent as UTF-8 (RFC 7617): Polish letters and € work",
        parse=Text(),
        file=True,
        secret=True,
    )
    timeout: float = setting(
        "THULIUM_TIMEOUT",
        "read timeout: the longest wait for any single read, seconds",
        parse=Number(0.001, 3_600),
        default=30.0,
        flag="--timeout",
        metavar="SECONDS",
    )
    connect_timeout: float = setting(
        "THULIUM_CONNECT_TIMEOUT",
        "connect timeout, seconds",
        parse=Number(0.001, 600),
        default=5.0,
    )
    request_deadline: float = setting(
        "THULIUM_REQUEST_DEADLINE",
        "seconds for a whole request, however slowly its answer trickles in; a request past "
        "it fails and is retried",
        parse=Number(0.001, 86_400),
        default=120.0,
    )
    max_body_bytes: int = setting(
        "THULIUM_MAX_BODY_BYTES",
        "the largest answer accepted, counted after decompression; a larger one fails its campaign",
        parse=Whole(1_000, 2_000_000_000),
        default=50_000_000,
    )
    ca_bundle: str | None = setting(
        "THULIUM_CA_BUNDLE",
        "a CA bundle file for a private CA; TLS is always verified",
        parse=ExistingFile(),
        default=None,
        shown_default="the system's CAs",
    )


@group
class RetryPolicy:
    """How hard the client tries before it gives a campaign up."""

    attempts: int = setting(
        "THULIUM_RETRY_ATTEMPTS",
        "attempts per campaign, the first one included",
        parse=Whole(1, 100),
        default=5,
    )
    initial_wait: float = setting(
        "THULIUM_RETRY_WAIT",
        "first retry wait, seconds; doubles each attempt, plus jitter",
        parse=_SECONDS_ANY_WAIT,
        default=1.0,
    )
    max_wait: float = setting(
        "THULIUM_RETRY_MAX_WAIT",
        "the longest single wait, Retry-After included, seconds",
        parse=Number(0, 86_400),
        default=60.0,
    )
    budget: float = setting(
        "THULIUM_RETRY_BUDGET",
        "seconds after a run's start after which failures are no longer retried, and after "
        "which 3 campaigns in a row (or THULIUM_CONCURRENCY, if more) failing with no answer, "
        "a 5xx or a 429 for two THULIUM_TIMEOUTs end the fetching (the rest are recorded "
        "skipped): bounds a run when the API is down or hangs",
        parse=Number(0, 604_800),
        default=600.0,
    )


@group
class FetchSettings:
    """How many requests are in flight, and how fast they may start."""

    concurrency: int = setting(
        "THULIUM_CONCURRENCY",
        "requests in flight at once (one keep-alive connection each)",
        parse=Whole(1, 256),
        default=8,
        flag="--concurrency",
        metavar="N",
    )
    max_rps: float = setting(
        "THULIUM_MAX_RPS",
        "client-side rate limit over all workers, requests per second (0: none)",
        parse=Number(0, 100_000),
        default=0.0,
        shown_default="off",
    )


@group
class CampaignSettings:
    """Which campaigns a command works on."""

    selection: CampaignSelection = setting(
        "THULIUM_CAMPAIGNS",
        "campaign ids separated by commas and/or whitespace, e.g. 00001,00002; each exactly "
        "five characters of 0-9, A-Z, a-z. The word active adds every campaign Thulium lists "
        "as active (GET /outbounds/stats), found anew at each run; ids listed beside it are "
        "synced too, active or not; if the active list cannot be had, the run syncs nothing "
        "(exit 69; 1 if the credentials are refused)",
        parse=CampaignIds(),
        flag="--campaign",
        metavar="IDS",
        repeatable=True,
    )


@group
class ShardSettings:
    """Which shard of the campaigns this run syncs, when several pods split them."""

    spec: Shard | None = setting(
        "THULIUM_SHARD",
        "sync only shard I (0-based) of N, a stable hash-based subset",
        parse=ShardSpec(),
        default=None,
        flag="--shard",
        metavar="I/N",
        shown_default="all campaigns",
    )
    count: int | None = setting(
        "THULIUM_SHARDS",
        "N for a Kubernetes Indexed Job, whose JOB_COMPLETION_INDEX is the shard index",
        parse=Whole(1, MAX_SHARDS),
        default=None,
    )
    completion_index: int | None = setting(
        "JOB_COMPLETION_INDEX",
        "set by Kubernetes in an Indexed Job: the shard index",
        parse=Whole(0, MAX_SHARDS - 1),
        default=None,
    )

    def validate(self) -> None:
        if self.spec is None and self.completion_index is not None:
            if self.count is None:
                raise ConfigError(
                    "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but THULIUM_SHARDS "
                    "is not: set it to the Job's completions"
                )
            if self.completion_index >= self.count:
                raise ConfigError(
                    f"JOB_COMPLETION_INDEX={self.completion_index} is not below "
                    f"THULIUM_SHARDS={self.count}"
                )

    @property
    def shard(self) -> Shard | None:
        if self.spec is not None:
            return self.spec
        if self.completion_index is not None and self.count is not None:
            return Shard(self.completion_index, self.count)
        return None


@group
class WriteSettings:
    """How much one write transaction carries, and how a write rides out a lost database."""

    batch_rows: int = setting(
        "THULIUM_BATCH_ROWS",
        "rows written per transaction at most (whole campaigns)",
        parse=Whole(1, 10_000_000),
        default=20_000,
    )
    retry_attempts: int = setting(
        "THULIUM_DB_RETRY_ATTEMPTS",
        "attempts per write when the connection is lost (a restart, a failover) or a "
        "statement times out",
        parse=Whole(1, 100),
        default=4,
    )
    retry_wait: float = setting(
        "THULIUM_DB_RETRY_WAIT",
        "first wait before a database retry, seconds; doubles, plus jitter",
        parse=_SECONDS_ANY_WAIT,
        default=1.0,
    )


@dataclass(frozen=True)
class HttpUrl:
    """An ``http(s)://host[:port][/path]`` URL, such as a Pushgateway's."""

    def __call__(self, raw: str, source: str) -> str:
        parts = _http_url(
            raw,
            source,
            invalid="is not a valid http(s) URL",
            credentials="use THULIUM_PUSHGATEWAY_USER/THULIUM_PUSHGATEWAY_PASSWORD",
        )
        if parts.query or parts.fragment:
            raise ConfigError(f"{source}={raw!r} must not have a query string or fragment")
        return raw.rstrip("/")

    def describe(self) -> str:
        return "http(s)://host[:port], no credentials"


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


@group
class MetricsSettings:
    """Where a sync reports its metrics for Prometheus (neither by default)."""

    file: str | None = setting(
        "THULIUM_METRICS_FILE",
        "write the run's metrics here at its end, in the node_exporter textfile format "
        "(atomically: a *.prom file in the textfile collector's directory)",
        parse=WritablePath(),
        default=None,
        shown_default="off",
    )
    pushgateway_url: str | None = setting(
        "THULIUM_PUSHGATEWAY_URL",
        "push the run's metrics to this Prometheus Pushgateway at its end, grouped by job "
        "(thulium-etl) and shard. No credentials in it: see THULIUM_PUSHGATEWAY_USER",
        parse=HttpUrl(),
        default=None,
        shown_default="off",
    )
    pushgateway_user: str | None = setting(
        "THULIUM_PUSHGATEWAY_USER",
        "the user for HTTP Basic auth to the Pushgateway; set with "
        "THULIUM_PUSHGATEWAY_PASSWORD, or neither",
        parse=Text(),
        default=None,
        shown_default="none",
    )
    pushgateway_password: str | None = setting(
        "THULIUM_PUSHGATEWAY_PASSWORD",
        "the Pushgateway user's password, sent as UTF-8 (RFC 7617)",
        parse=Text(),
        default=None,
        file=True,
        secret=True,
        shown_default="none",
    )

    def validate(self) -> None:
        if (self.pushgateway_user is None) != (self.pushgateway_password is None):
            raise ConfigError(
                "THULIUM_PUSHGATEWAY_USER and THULIUM_PUSHGATEWAY_PASSWORD (or its _FILE) go "
                "together: set both, or neither"
            )

    @property
    def pushgateway_auth(self) -> tuple[str, str] | None:
        """The Pushgateway's user and password, if set."""
        if self.pushgateway_user is None or self.pushgateway_password is None:
            return None
        return self.pushgateway_user, self.pushgateway_password


# -- what each command reads -----------------------------------------------------------------


@group
class DatabaseCommand:
    """``migrate``, ``runs`` and ``grant-read``: the database only."""

    database: DatabaseSettings


@group
class CheckCommand:
    database: DatabaseSettings
    api: ApiSettings
    retry: RetryPolicy
    fetch: FetchSettings
    campaigns: CampaignSettings


@group
class SyncCommand:
    database: DatabaseSettings
    api: ApiSettings
    retry: RetryPolicy
    fetch: FetchSettings
    campaigns: CampaignSettings
    shards: ShardSettings
    write: WriteSettings
    metrics: MetricsSettings


# -- documentation rendered from the declarations ---------------------------------------------


def _default(item: dataclasses.Field[Any], declaration: Setting) -> str:
    if declaration.shown_default is not None:
        return declaration.shown_default
    if item.default is dataclasses.MISSING:
        return "required"
    value = item.default
    return f"{value:g}" if isinstance(value, float) else str(value)


def help_section(commands: Sequence[type]) -> str:
    """The environment section of ``--help`` for settings of ``commands``, each once."""
    lines = [
        "environment (a flag overrides its variable; NAME_FILE reads NAME from a file;",
        "[default; accepted values]):",
    ]
    seen: set[str] = set()
    for command in commands:
        for item, declaration in declared(command):
            if declaration.env in seen:
                continue
            seen.add(declaration.env)
            names = declaration.env + ("[_FILE]" if declaration.file else "")
            if declaration.flag:
                names += f", {declaration.flag}"
            facts = "; ".join(
                x for x in (_default(item, declaration), declaration.parse.describe()) if x
            )
            text = f"{declaration.help} [{facts}]"
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
                readers.setdefault(declaration.env, []).append(name)
                found.setdefault(declaration.env, (item, declaration))
    for env, (item, declaration) in found.items():
        flag = f"`{declaration.flag}`" if declaration.flag else ""
        if declaration.repeatable:
            flag += " (repeatable)"
        used = readers[env]
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
