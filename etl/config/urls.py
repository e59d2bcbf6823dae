"""Parsers of the URLs among the settings: the Thulium API's, the database's, the Pushgateway's.

A URL must never carry a secret into a message: credentials in an http(s) URL are refused
before any of it is shown, and a database URL whose password could be read as part of the
host or the database name is refused without a word of its value.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from etl.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

_PSYCOPG_DRIVERS = {"postgres", "postgresql", "postgresql+psycopg"}
_URL_PATH = re.compile(r"[A-Za-z0-9._~/-]*")  # a plain path: nothing a server could reinterpret


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
        # Imported here, not with the module: ``thulium-etl --help`` needs no SQLAlchemy,
        # whose import takes longer (~150 ms) than everything else --help does.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

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
