"""Log formatting (human text or JSON lines) and redaction of secrets at the output boundary.

Secrets are registered once, when configuration is read; every formatted line, traceback and
stored error passes through :func:`redact`, so a password that sneaks into an exception
message (a database URL in a driver error, say) still never reaches a log or a table.
"""

from __future__ import annotations

import contextlib
import json
import logging
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
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?=@)", re.I)
_AUTH_HEADER = re.compile(r"(?P<head>Authorization['\"]?\s*[:=]\s*['\"]?\w+\s+)[^\s'\",}]+", re.I)
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def add_secret(value: str | None) -> None:
    """Remember a value that must never be printed or stored."""
    if value:
        with _secrets_lock:
            _secrets.add(value)


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
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    text = _URL_PASSWORD.sub(rf"\g<head>{_MASK}", text)
    return _AUTH_HEADER.sub(rf"\g<head>{_MASK}", text)


class TextFormatter(logging.Formatter):
    """``2026-11-27T02:00:00Z INFO  campaign 00001 synced: …`` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


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
        clean = {k: redact(v) if isinstance(v, str) else v for k, v in event.items()}
        return redact(json.dumps(clean, ensure_ascii=False, default=str))


def configure(*, fmt: str | None, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send logs to stderr: JSON when asked, or by default when stderr is not a terminal."""
    stream = stream or sys.stderr
    if fmt is None:
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_thulium_etl", False):
            root.removeHandler(old)
    handler._thulium_etl = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
