"""Settings from environment variables and secret files, validated before anything is contacted.

Every setting has one environment variable; command-line flags are applied by the CLI as
overrides of the same names, so there is one parser and one set of error messages. A bad
value raises :class:`~etl.errors.ConfigError` naming the variable.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import pq
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from etl.errors import ConfigError
from etl.shards import Shard

CAMPAIGN_ID = re.compile(r"[0-9A-Za-z]{5}")
_LIST_SEPARATORS = re.compile(r"[\s,]+")
_PSYCOPG_DRIVERS = {"postgres", "postgresql", "postgresql+psycopg"}
_URL_PATH = re.compile(r"[A-Za-z0-9._~/-]*")  # a plain path: nothing a server could reinterpret
MAX_SHARDS = 256

Environ = Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard the client tries before it gives a campaign up."""

    attempts: int = 5
    initial_wait: float = 1.0
    max_wait: float = 60.0
    budget: float = 600.0  # total seconds of retry waits one run may spend


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    """Everything the Thulium client needs."""

    base_url: str
    user: str
    password: str = field(repr=False)
    timeout: float = 30.0
    connect_timeout: float = 5.0
    request_deadline: float = 120.0  # a whole request, however slowly the answer arrives
    max_body_bytes: int = 50_000_000  # decoded; a real answer is a few kilobytes
    ca_bundle: str | None = None
    retry: RetryPolicy = RetryPolicy()
    concurrency: int = 8
    max_rps: float | None = None  # client-side rate limit over all workers


@dataclass(frozen=True, kw_only=True)
class WriteSettings:
    """The write path: batch size and how long to ride out a lost database connection."""

    batch_rows: int = 20_000
    db_attempts: int = 4
    db_retry_wait: float = 1.0


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    """The target database and how long any statement of the job may wait or run."""

    url: URL
    lock_timeout: float = 60.0
    statement_timeout: float = 600.0


def _get(env: Environ, name: str) -> str | None:
    """Return a variable's value; an empty value counts as unset (as in most deploy tools)."""
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _require(env: Environ, name: str, what: str) -> str:
    value = _get(env, name)
    if value is None:
        raise ConfigError(f"{name} is not set: it must give {what}")
    return value


def _utf8(name: str, value: str) -> str:
    """Refuse text that is not UTF-8 (undecodable bytes in the environment), naming only
    the variable: the value may be a secret."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{name} is not valid UTF-8 text") from None
    return value


def _secret(env: Environ, name: str, what: str) -> str:
    """Read a secret from ``NAME`` or from the file named by ``NAME_FILE`` (not both)."""
    direct = env.get(name)
    file_name = _get(env, f"{name}_FILE")
    if direct and file_name:
        raise ConfigError(f"set either {name} or {name}_FILE, not both")
    if file_name is None:
        if not direct:
            raise ConfigError(f"{name} (or {name}_FILE) is not set: it must give {what}")
        return _utf8(name, direct)
    try:
        value = Path(file_name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{name}_FILE: cannot read {file_name}: {reason}") from None
    value = value.rstrip("\r\n")
    if not value:
        raise ConfigError(f"{name}_FILE: {file_name} is empty")
    return value


def _number(
    env: Environ, name: str, default: float, *, minimum: float = 0.0, maximum: float
) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw[:40]!r} is not a number") from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise ConfigError(f"{name}={raw[:40]!r} must be between {minimum:g} and {maximum:g}")
    return value


def _count(env: Environ, name: str, default: int, *, minimum: int = 1, maximum: int) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw[:40]!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={raw[:40]!r} must be between {minimum} and {maximum}")
    return value


def parse_campaign_ids(raw: str, *, source: str) -> tuple[str, ...]:
    """Split on commas and whitespace and validate, keeping the order and dropping repeats."""
    ids: dict[str, None] = {}
    for part in _LIST_SEPARATORS.split(raw):
        part = part.strip()
        if not part:
            continue
        if not CAMPAIGN_ID.fullmatch(part):
            raise ConfigError(
                f"{source}: campaign id {part!r} is invalid: it must be exactly five "
                "characters of 0-9, A-Z, a-z (e.g. 00001)"
            )
        ids[part] = None
    if not ids:
        raise ConfigError(f"{source}: no campaign ids given")
    return tuple(ids)


def _base_url(raw: str) -> str:
    """A plain ``http(s)://host[:port]/path`` to which ``/outbounds/<id>/statuses`` is added.

    Anything a server or proxy could read otherwise is refused: a ``?`` or ``#`` (even with
    nothing after it) would turn the appended path into a query or a fragment, so every
    campaign would fetch the same URL; so would ``..`` or encoded characters in the path.
    """
    name = "THULIUM_BASE_URL"
    expected = "expected a plain base such as https://<system>.thulium.com/api"
    try:
        parts = urllib.parse.urlsplit(raw)
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a valid URL: {exc}") from None
    if "@" in parts.netloc:
        raise ConfigError(f"{name} must not carry credentials: use THULIUM_USER/THULIUM_PASSWORD")
    if parts.scheme not in {"http", "https"} or not parts.hostname or not port_ok:
        raise ConfigError(f"{name}={raw!r} is not a valid URL: {expected}")
    if "?" in raw or "#" in raw:
        raise ConfigError(f"{name}={raw!r} must not have a query string or fragment: {expected}")
    segments = parts.path.split("/")
    if not _URL_PATH.fullmatch(parts.path) or "." in segments or ".." in segments:
        raise ConfigError(
            f"{name}={raw!r}: the path may hold only letters, digits, '-', '.', '_', '~' and "
            f"'/', with no '.' or '..' segments: {expected}"
        )
    return raw.rstrip("/")


def database_url(env: Environ) -> URL:
    """The SQLAlchemy URL of the target database, always with the psycopg 3 driver.

    Query parameters are libpq's (``sslmode``, ``options``, …); an unknown one is refused
    here rather than by the driver at connection time.
    """
    raw = _secret(env, "DATABASE_URL", "the PostgreSQL URL, e.g. postgresql://user@host/db")
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            "DATABASE_URL is not a valid URL: expected postgresql://user:password@host:5432/db"
        ) from None
    if url.drivername not in _PSYCOPG_DRIVERS:
        raise ConfigError(
            f"DATABASE_URL uses {url.drivername!r}: only PostgreSQL through psycopg 3 is "
            "supported (postgresql://, postgres:// or postgresql+psycopg://)"
        )
    if url.port is not None and not 0 < url.port < 65536:
        raise ConfigError(f"DATABASE_URL has an invalid port {url.port}")
    unknown = sorted(set(url.query) - _libpq_options())
    if unknown:
        raise ConfigError(
            f"DATABASE_URL has unknown connection option(s) {', '.join(unknown)}: the query "
            "string takes libpq's options, e.g. sslmode, connect_timeout, options"
        )
    return url.set(drivername="postgresql+psycopg")


def _libpq_options() -> set[str]:
    return {option.keyword.decode() for option in pq.Conninfo.get_defaults()}


def database_settings(env: Environ) -> DatabaseSettings:
    """The database URL and the timeouts of the job's sessions."""
    return DatabaseSettings(
        url=database_url(env),
        lock_timeout=_number(
            env, "THULIUM_DB_LOCK_TIMEOUT", DatabaseSettings.lock_timeout,
            minimum=0.001, maximum=86_400,
        ),
        statement_timeout=_number(
            env, "THULIUM_DB_STATEMENT_TIMEOUT", DatabaseSettings.statement_timeout,
            minimum=0.001, maximum=86_400,
        ),
    )


def api_settings(env: Environ) -> ApiSettings:
    """Client settings; raises ConfigError on the first bad or missing value."""
    base = _base_url(_require(env, "THULIUM_BASE_URL", "the API root, e.g. https://acme.thulium.com/api"))
    user = _utf8("THULIUM_USER", _require(env, "THULIUM_USER", "the Thulium API user"))
    password = _secret(env, "THULIUM_PASSWORD", "the API user's password")
    ca_bundle = _get(env, "THULIUM_CA_BUNDLE")
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise ConfigError(f"THULIUM_CA_BUNDLE: {ca_bundle} is not a readable file")
    retry = RetryPolicy(
        attempts=_count(env, "THULIUM_RETRY_ATTEMPTS", RetryPolicy.attempts, maximum=100),
        initial_wait=_number(
            env, "THULIUM_RETRY_WAIT", RetryPolicy.initial_wait, maximum=3_600
        ),
        max_wait=_number(env, "THULIUM_RETRY_MAX_WAIT", RetryPolicy.max_wait, maximum=86_400),
        budget=_number(env, "THULIUM_RETRY_BUDGET", RetryPolicy.budget, maximum=604_800),
    )
    return ApiSettings(
        base_url=base,
        user=user,
        password=password,
        timeout=_number(
            env, "THULIUM_TIMEOUT", ApiSettings.timeout, minimum=0.001, maximum=3_600
        ),
        connect_timeout=_number(
            env, "THULIUM_CONNECT_TIMEOUT", ApiSettings.connect_timeout,
            minimum=0.001, maximum=600,
        ),
        request_deadline=_number(
            env, "THULIUM_REQUEST_DEADLINE", ApiSettings.request_deadline,
            minimum=0.001, maximum=86_400,
        ),
        max_body_bytes=_count(
            env, "THULIUM_MAX_BODY_BYTES", ApiSettings.max_body_bytes,
            minimum=1_000, maximum=2_000_000_000,
        ),
        ca_bundle=ca_bundle,
        retry=retry,
        concurrency=_count(env, "THULIUM_CONCURRENCY", ApiSettings.concurrency, maximum=256),
        max_rps=_number(env, "THULIUM_MAX_RPS", 0.0, minimum=0.0, maximum=100_000) or None,
    )


def write_settings(env: Environ) -> WriteSettings:
    return WriteSettings(
        batch_rows=_count(
            env, "THULIUM_BATCH_ROWS", WriteSettings.batch_rows, maximum=10_000_000
        ),
        db_attempts=_count(
            env, "THULIUM_DB_RETRY_ATTEMPTS", WriteSettings.db_attempts, maximum=100
        ),
        db_retry_wait=_number(
            env, "THULIUM_DB_RETRY_WAIT", WriteSettings.db_retry_wait, maximum=3_600
        ),
    )


def _shard_text(raw: str, *, source: str) -> Shard:
    match = re.fullmatch(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*", raw)
    if not match:
        raise ConfigError(
            f"{source}={raw[:40]!r} must look like I/N, e.g. 0/3 (shards count from 0)"
        )
    index, count = int(match[1]), int(match[2])
    if not 1 <= count <= MAX_SHARDS or index >= count:
        raise ConfigError(
            f"{source}={raw[:40]!r}: the shard index must be 0 … N-1, and N between 1 and "
            f"{MAX_SHARDS}"
        )
    return Shard(index, count)


def shard(env: Environ) -> Shard | None:
    """This run's shard: ``THULIUM_SHARD=I/N``, or a Kubernetes Indexed Job's index."""
    raw = _get(env, "THULIUM_SHARD")
    if raw is not None:
        return _shard_text(raw, source="THULIUM_SHARD")
    index = _get(env, "JOB_COMPLETION_INDEX")
    if index is None:
        return None
    count = _get(env, "THULIUM_SHARDS")
    if count is None:
        raise ConfigError(
            "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but THULIUM_SHARDS is not: "
            "set it to the Job's completions"
        )
    return _shard_text(f"{index}/{count}", source="JOB_COMPLETION_INDEX/THULIUM_SHARDS")


def campaign_ids(env: Environ) -> tuple[str, ...]:
    """The configured campaign ids from ``THULIUM_CAMPAIGNS``."""
    raw = _require(env, "THULIUM_CAMPAIGNS", "campaign ids separated by commas, e.g. 00001,00002")
    return parse_campaign_ids(raw, source="THULIUM_CAMPAIGNS")
