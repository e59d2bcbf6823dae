"""Log formatting (human text or JSON lines) and the one boundary text crosses on its way out.

Secrets are registered once, when configuration is read. Every formatted line, traceback and
stored error passes through :func:`clean` (the run history calls it on every text it
writes), so a password that sneaks into an exception message (a database URL in a driver
error, say) never reaches a log or a table, and neither does text Postgres or a log stream
cannot take (a NUL, an unpaired surrogate from a JSON escape, a megabyte of error body). A
secret shorter than :data:`SHORT_SECRET` is masked where it stands as a word of its own, not
inside other words.
What is shown on a terminal then has its control characters escaped: text lines by
:func:`visible`, JSON by :func:`visible_json`; and an output that cannot encode a character
writes it as an escape (:func:`escape_unencodable`). Secrets are masked first, so no escape
can split one.
Every pattern here runs in time linear in the text's length: a hostile answer must not be
able to stall the job while it is being logged.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

_MASK = "***"
_context: dict[str, object] = {}  # fields of the run in progress, added to every JSON event
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
# A secret shorter than this is masked only where it stands as a word of its own: masking a
# one-letter password everywhere would turn every "p" of every line into "***".
SHORT_SECRET = 5
_short_secrets: set[str] = set()
_short_pattern: re.Pattern[str] | None = None
# Bounded repetitions and a scheme that starts only where no scheme character precedes it:
# each match attempt reads a bounded stretch, so redaction stays linear in the text.
_URL_PASSWORD = re.compile(
    r"(?<![a-z0-9+.-])(?P<head>[a-z][a-z0-9+.-]{0,31}://[^\s:/@]{0,256}:)[^\s/@]{1,1024}(?=@)",
    re.I,
)
_AUTH_HEADER = re.compile(
    r"(?P<head>Authorization['\"]?\s{0,8}[:=]\s{0,8}['\"]?\w{1,32}\s{1,8})[^\s'\",}]{1,4096}",
    re.I,
)
_PASSWORD_PARAMETER = re.compile(r"(?P<head>\bpassword\s{0,8}=\s{0,8})[^\s&'\",;]{1,1024}", re.I)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL and unpaired surrogates
_REPLACEMENT = "\ufffd"
# What a terminal acts on instead of showing it: C0 controls (ESC, BEL, CR, LF, TAB …), DEL,
# C1 controls (a one-byte CSI among them), the line and paragraph separators, and the bidi
# overrides and isolates that reorder what follows. json.dumps escapes C0 but not the rest.
_JSON_LEAVES_RAW = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f{_JSON_LEAVES_RAW}]")
_CONTROL_IN_JSON = re.compile(f"[{_JSON_LEAVES_RAW}]")
TEXT_LIMIT = 2000  # characters of an error kept in the run history
ID_LIMIT = 200  # characters of a request id kept there: Thulium's are 32
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def add_secret(value: str | None) -> None:
    """Remember a value that must never be printed or stored, with or without whitespace
    around it (a password may have some, and a message may lose it)."""
    global _short_pattern
    if value and value.strip() != value:
        add_secret(value.strip())
    if not value:
        return
    with _secrets_lock:
        if len(value) >= SHORT_SECRET:
            _secrets.add(value)
            return
        _short_secrets.add(value)
        # Literals of a few characters: each position is tried against a bounded alternation.
        words = "|".join(map(_as_word, sorted(_short_secrets, key=len, reverse=True)))
        _short_pattern = re.compile(words)


def _as_word(secret: str) -> str:
    """``secret`` where it is not glued to a word character on a side that is one itself.
    The literal comes first (the check of what precedes it looks back over it), so that the
    engine can search for the literal instead of trying every position."""
    literal = re.escape(secret)
    before = rf"(?<!\w{literal})" if re.match(r"\w", secret[0]) else ""
    after = r"(?!\w)" if re.match(r"\w", secret[-1]) else ""
    return literal + before + after


@contextlib.contextmanager
def context(**fields: object) -> Iterator[None]:
    """Add ``fields`` (e.g. ``run_id``) to every JSON event logged meanwhile, by any thread."""
    _context.update(fields)
    try:
        yield
    finally:
        for key in fields:
            _context.pop(key, None)


def redact(text: str) -> str:
    """Replace every known secret, URL password and Authorization value with ``***``."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
        short = _short_pattern if any(s in text for s in _short_secrets) else None
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    if short is not None:
        text = short.sub(_MASK, text)
    for pattern in (_URL_PASSWORD, _AUTH_HEADER, _PASSWORD_PARAMETER):
        text = pattern.sub(rf"\g<head>{_MASK}", text)
    return text


def clean(text: str, *, limit: int | None = None, codec: str | None = None) -> str:
    """``text`` as a log line or a table can take it: secrets masked, NULs and unpaired
    surrogates replaced by U+FFFD, every character ``codec`` (a database's encoding) cannot
    hold written as a ``\\uXXXX`` escape, and cut to ``limit`` characters if given: never
    inside an escape, and marked with a ``…`` the codec can hold (else ``...``)."""
    text = redact(text)  # first: a cut could leave part of a secret no pattern recognises
    text = _UNSTORABLE.sub(_REPLACEMENT, text)
    if codec is not None:
        text = text.encode(codec, "backslashreplace").decode(codec)
    if limit is not None and len(text) > limit:
        marker = _ELLIPSIS if _holds(codec, _ELLIPSIS) else "..."
        text = _PART_OF_AN_ESCAPE.sub("", text[: limit - len(marker)]) + marker
    return text


_ELLIPSIS = "…"
# What a cut may leave of a backslashreplace escape (\xNN, \uNNNN, \UNNNNNNNN) at its end.
_PART_OF_AN_ESCAPE = re.compile(r"\\(x[0-9a-f]?|u[0-9a-f]{0,3}|U[0-9a-f]{0,7})?$")


def _holds(codec: str | None, character: str) -> bool:
    if codec is None:
        return True
    try:
        character.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def visible(text: str, *, keep_lines: bool = False) -> str:
    """``text`` for a terminal: cleaned (:func:`clean`: a secret is masked before an escape
    could hide it), then every control character shown as an escape (``\\x1b``, ``\\n``,
    ``\\u202e``), so that text from the API can neither act on the terminal nor break its
    line. ``keep_lines`` keeps the line breaks of a text that has lines (a traceback)."""
    text = clean(text)
    if keep_lines:
        return "\n".join(_CONTROL.sub(_escape, line) for line in text.split("\n"))
    return _CONTROL.sub(_escape, text)


def _escape(control: re.Match[str]) -> str:
    return control[0].encode("unicode_escape").decode("ascii")


def visible_json(text: str) -> str:
    """JSON text with the controls json.dumps leaves raw written as ``\\uXXXX``: the same
    JSON, safe to show on a terminal."""
    return _CONTROL_IN_JSON.sub(lambda control: f"\\u{ord(control[0]):04x}", text)


def _as_json_escapes(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler: what the output's encoding cannot hold, as JSON escapes it."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return json.dumps(error.object[error.start : error.end])[1:-1], error.end


_UNENCODABLE_AS_ESCAPES = "thulium-etl.json-escapes"
codecs.register_error(_UNENCODABLE_AS_ESCAPES, _as_json_escapes)


def escape_unencodable(*streams: TextIO) -> None:
    """Make each stream write a character its encoding cannot hold (``PYTHONIOENCODING=ascii``,
    a Latin-2 terminal) as ``\\uXXXX``, as JSON does, instead of failing: text stays
    readable, and JSON (logs, ``runs --json``) stays valid and means the same."""
    for stream in streams:
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors=_UNENCODABLE_AS_ESCAPES)


class TextFormatter(logging.Formatter):
    """``2026-11-27T02:00:00Z INFO  campaign 00001 synced: …`` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def format(self, record: logging.LogRecord) -> str:
        """The event on one line, whatever its message holds; its traceback, if any, on the
        lines after it."""
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        line = visible(self.formatMessage(record))
        if record.exc_info:
            line += "\n" + visible(self.formatException(record.exc_info), keep_lines=True)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per event; ``extra`` fields (run_id, campaign_id, …) become keys."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                event[key] = value
        for key, value in _context.items():
            event.setdefault(key, value)
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        fields = {k: clean(v) if isinstance(v, str) else v for k, v in event.items()}
        return visible_json(clean(json.dumps(fields, ensure_ascii=False, default=str)))


class _Handler(logging.StreamHandler[TextIO]):
    """The job's own handler: the one :func:`configure` replaces."""


class _TerminalHandler(_Handler):
    """Text logs on a terminal, under which a status line (:func:`status`) is kept."""

    _ERASE = "\r\x1b[K"  # to the start of the line, and clear it

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._status = ""

    def emit(self, record: logging.LogRecord) -> None:
        if self._status:
            self.stream.write(self._ERASE)
        super().emit(record)
        if self._status:
            self.stream.write(self._status)
            self.flush()

    def show(self, text: str) -> None:
        self.acquire()
        try:
            self._status = clean(text)
            self.stream.write(self._ERASE + self._status)
            self.flush()
        except OSError:
            pass  # a terminal that went away: the status is for the eyes only
        finally:
            self.release()


_terminal: _TerminalHandler | None = None
_handler: _Handler | None = None


def emergency(message: str) -> None:
    """Log ``message`` as an error with no lock of the logging machinery taken (a thread that
    hangs may hold one): formatted as configured, written straight to the stream's file."""
    if _handler is None:
        return
    record = logging.makeLogRecord(
        {"name": "thulium-etl", "levelno": logging.ERROR, "levelname": "ERROR", "msg": message}
    )
    line = _handler.format(record) + "\n"
    with contextlib.suppress(OSError, ValueError):
        stream = _handler.stream
        os.write(stream.fileno(), line.encode(stream.encoding or "utf-8", "replace"))


def status(text: str) -> None:
    """Show ``text`` as the status line under the logs, when they are text on a terminal;
    an empty text removes it. Anywhere else (a pipe, cron, JSON logs) this does nothing."""
    if _terminal is not None:
        _terminal.show(text)


def configure(*, fmt: str | None, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send logs to stderr: JSON when asked, or by default when stderr is not a terminal."""
    global _terminal, _handler
    stream = stream or sys.stderr
    terminal = stream.isatty()
    if fmt is None:
        fmt = "text" if terminal else "json"
    handler = _TerminalHandler(stream) if fmt == "text" and terminal else _Handler(stream)
    _terminal = handler if isinstance(handler, _TerminalHandler) else None
    _handler = handler
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _Handler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # A closed or full stderr must not add a traceback per log line to the failure.
    logging.raiseExceptions = False
    for noisy in ("urllib3", "alembic"):  # migrate says what it did in one line of its own
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
