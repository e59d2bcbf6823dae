"""The typed status record and the strict parser of one campaign's answer.

Thulium's documentation is loose (its own sample is not valid JSON, and ``status_id`` is a
string here but an integer elsewhere), so everything is checked here, before any SQL runs:
a body that passes can always be stored, and one that does not names what is wrong.

An answer can be 5 MB (some 40,000 statuses) and a run holds up to ``concurrency + 2`` of
them at once, so a large answer is read item by item and every answer's statuses are kept
packed (:class:`Statuses`): a decoded tree of the whole answer would take about 30 MB while
it is checked, and its statuses about 10 MB as tuples of Python strings, against under 2 MB
packed.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import json
import marshal
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

import msgspec

from etl import logs
from etl.errors import PayloadError

_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1
# What the schema can store, so that whatever passes the parser can be written: status_id
# and system_status are indexed (a btree entry holds at most about 2,700 bytes, and 100
# characters are at most 400 bytes of UTF-8); a name is not indexed (TOAST stores it).
MAX_ID_CHARS = 100
CAMPAIGN_ID = re.compile(r"[0-9A-Za-z]{5}")  # five characters; leading zeros matter
MAX_NAME_CHARS = 10_000
_SNIPPET = 120
_SECRET_ROOM = 4096  # read past what is shown, so a secret that straddles it is still whole


class Status(NamedTuple):
    """One status of a campaign, in the canonical form stored in ``statuses``."""

    status_id: str
    system_status: str
    dictionary_status_id: int | None
    name: str


_Fields = tuple[str, str, int | None, str]  # a Status as the plain tuple marshal stores
_PACKED = 1024  # statuses per marshalled chunk: what reading or packing holds unpacked at once


class Statuses(Collection[Status]):
    """Statuses in the order given, packed with ``marshal``, each unpacked as it is read.

    About 45 bytes a status instead of about 260 as a tuple of Python strings. ``marshal``
    only ever reads back what it wrote in this process, from values already checked.
    """

    __slots__ = ("_chunks", "_count")

    def __init__(self, statuses: Iterable[_Fields] = ()) -> None:
        chunks: list[bytes] = []
        count = 0
        rest = iter(statuses)
        while chunk := [tuple(status) for status in itertools.islice(rest, _PACKED)]:
            chunks.append(marshal.dumps(chunk))
            count += len(chunk)
        self._chunks = tuple(chunks)
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Status]:
        for chunk in self._chunks:
            yield from map(Status._make, marshal.loads(chunk))

    def __contains__(self, status: object) -> bool:
        return any(status == mine for mine in self)

    def __eq__(self, other: object) -> bool:
        """Equal to the same statuses in the same order, packed or in a tuple."""
        if isinstance(other, Statuses | tuple):
            return len(self) == len(other) and tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Statuses({list(self)!r})"


class Snapshot(NamedTuple):
    """A campaign's complete, validated list of statuses at one moment."""

    campaign_id: str
    statuses: Collection[Status]  # Statuses, as the parser makes them


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        dupes = sorted(key for key, count in counts.items() if count > 1)
        shown = ", ".join(repr(snippet(key.encode("utf-8", "replace"))) for key in dupes[:5])
        raise ValueError(f"an object repeats the key(s) {shown}")
    return value


def snippet(body: bytes) -> str:
    """The start of a body, printable and short, for an error message.

    Secrets are masked before the text is cut and its whitespace squeezed: a password cut in
    two, or with its double space made one, would no longer be recognised as one.
    """
    size = _SNIPPET + _SECRET_ROOM
    while True:
        head = body[:size]
        text = " ".join(logs.redact(head.decode("utf-8", errors="replace")).split())
        # The end of the head, where a secret may be cut in two, must lie past what is shown
        # once the whitespace is squeezed; a head of mostly whitespace is read further.
        if len(head) == len(body) or len(text) >= _SNIPPET + _SECRET_ROOM:
            break
        size *= 4
    cut = len(text) > _SNIPPET or len(body) > len(head)
    return text[:_SNIPPET] + ("…" if cut else "")


def _text(value: object, *, field: str, where: str, allow_empty: bool, limit: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: {field} must be a string, got {_kind(value)}")
    if not allow_empty and not value.strip():
        raise ValueError(f"{where}: {field} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{where}: {field} is longer than {limit} characters")
    if "\x00" in value:
        raise ValueError(f"{where}: {field} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: {field} contains an unpaired surrogate") from None
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _status(item: object, index: int) -> _Fields:
    where = f"item {index}"
    if not isinstance(item, dict):
        raise ValueError(f"{where} is {_kind(item)}, expected an object")
    missing = [
        key
        for key in ("status_id", "system_status", "dictionary_status_id", "name")
        if key not in item
    ]
    if missing:
        raise ValueError(f"{where} lacks the field(s) {', '.join(missing)}")

    raw_id = item["status_id"]
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        status_id = _text(
            str(raw_id), field="status_id", where=where, allow_empty=False, limit=MAX_ID_CHARS
        )
    elif isinstance(raw_id, str):
        status_id = _text(
            raw_id, field="status_id", where=where, allow_empty=False, limit=MAX_ID_CHARS
        )
    else:
        raise ValueError(f"{where}: status_id must be a string or an integer, got {_kind(raw_id)}")

    dictionary_id = item["dictionary_status_id"]
    if dictionary_id is not None:
        if isinstance(dictionary_id, bool) or not isinstance(dictionary_id, int):
            raise ValueError(
                f"{where}: dictionary_status_id must be an integer or null, "
                f"got {_kind(dictionary_id)}"
            )
        if not _BIGINT_MIN <= dictionary_id <= _BIGINT_MAX:
            raise ValueError(f"{where}: dictionary_status_id {dictionary_id} is out of range")

    system_status = _text(
        item["system_status"],
        field="system_status",
        where=where,
        allow_empty=False,
        limit=MAX_ID_CHARS,
    )
    name = _text(item["name"], field="name", where=where, allow_empty=True, limit=MAX_NAME_CHARS)
    return status_id, system_status, dictionary_id, name


def _error_details(value: object) -> tuple[str | None, list[str]]:
    """Thulium's ``request_id`` and error messages, if ``value`` is one of its error bodies."""
    if not isinstance(value, dict):
        return None, []
    request_id = value.get("request_id")
    errors = value.get("errors")
    messages: list[str] = []
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                code = error.get("code")
                messages.append(f"{error['message']} (code {code})" if code else error["message"])
    return (request_id if isinstance(request_id, str) else None), messages


READ_WHOLE_BYTES = 64 * 1024  # an answer up to this size is decoded whole: faster, and small
_STRICT: dict[str, Any] = {"parse_constant": _reject_constant, "object_pairs_hook": _pairs}
_ITEM = json.JSONDecoder(**_STRICT)
_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


def _decode_json(body: bytes) -> Any:
    """Decode strictly: UTF-8 only, no NaN/Infinity, no repeated keys. One leading byte
    order mark is skipped, as RFC 8259 allows (IIS and PHP stacks send one)."""
    return json.loads(body.decode("utf-8-sig"), **_STRICT)


def _items_one_by_one(body: bytes) -> Iterator[Any]:
    """The items of a JSON array, each decoded as :func:`_decode_json` decodes, one at a
    time: msgspec finds where each item lies in the body without building it. Raises
    ValueError or RecursionError for anything else, with a message not meant to be shown:
    :func:`_decode_json` is the judge of a body that is not a clean array."""
    items = _ARRAY.decode(
        memoryview(body)[len(codecs.BOM_UTF8) :] if body.startswith(codecs.BOM_UTF8) else body
    )
    for item in items:
        text = str(item, "utf-8")
        value, end = _ITEM.raw_decode(text)  # an item has no whitespace around it
        if end != len(text):
            raise ValueError("not one JSON value")
        yield value


def thulium_said(messages: list[str]) -> str:
    """``; Thulium said: …`` for the messages of an error answer, or nothing."""
    return f"; Thulium said: {'; '.join(messages)}" if messages else ""


def thulium_error(body: bytes) -> tuple[str | None, list[str]]:
    """Best effort: the ``request_id`` and messages of an error body, or nothing."""
    try:
        return _error_details(_decode_json(body))
    except (ValueError, RecursionError):
        return None, []


def _json_array(body: bytes, *, of: str, campaign_id: str, subject: str | None) -> list[Any]:
    """The answer as a JSON array, or a PayloadError saying what it is instead."""

    def error(message: str, request_id: str | None = None) -> PayloadError:
        return PayloadError(
            message, campaign_id=campaign_id, subject=subject, request_id=request_id
        )

    try:
        value = _decode_json(body)
    except UnicodeDecodeError:
        raise error(f"the answer is not UTF-8 text: {snippet(body)!r}") from None
    except RecursionError:
        raise error("the answer is nested too deeply") from None
    except ValueError as exc:
        raise error(f"the answer is not valid JSON ({exc}): {snippet(body)!r}") from None
    if not isinstance(value, list):
        request_id, messages = _error_details(value)
        raise error(
            f"the answer is {_kind(value)}, expected an array of {of}{thulium_said(messages)}",
            request_id,
        )
    return value


T = TypeVar("T")


def _each(
    items: Iterable[object],
    parse: Callable[[object, int], T],
    *,
    key: Callable[[T], str],
    key_name: str,
    campaign_id: str,
    subject: str | None,
) -> Iterator[T]:
    """Every item parsed, no two with the same ``key``; a PayloadError names the first bad one."""
    seen: set[str] = set()
    try:
        for index, item in enumerate(items):
            record = parse(item, index)
            if key(record) in seen:
                raise ValueError(f"item {index}: {key_name} {key(record)!r} appears twice")
            seen.add(key(record))
            yield record
    except ValueError as exc:
        raise PayloadError(str(exc), campaign_id=campaign_id, subject=subject) from None


def parse_statuses(body: bytes, *, campaign_id: str) -> Snapshot:
    """Validate one answer of ``GET /outbounds/:id/statuses`` into a snapshot.

    Raises :class:`PayloadError` for anything but a JSON array of well-formed status objects
    with distinct ``status_id`` values.
    """

    def statuses(items: Iterable[object]) -> Statuses:
        return Statuses(
            _each(
                items,
                _status,
                key=lambda s: s[0],
                key_name="status_id",
                campaign_id=campaign_id,
                subject=None,
            )
        )

    # A large answer is read one item at a time. One that is not a clean array of valid
    # statuses is read again whole, by the decoder that says what is wrong with it, so the
    # verdict and its message never depend on the size.
    if len(body) > READ_WHOLE_BYTES:
        with contextlib.suppress(ValueError, RecursionError, PayloadError):
            return Snapshot(campaign_id, statuses(_items_one_by_one(body)))
    items = _json_array(body, of="statuses", campaign_id=campaign_id, subject=None)
    return Snapshot(campaign_id, statuses(items))


class CampaignStat(NamedTuple):
    """An active campaign as ``GET /outbounds/stats`` lists it."""

    campaign_id: str
    records_count: int
    completion_percent: float


STATS_SUBJECT = "the active campaigns (GET /outbounds/stats)"


def _campaign_stat(item: object, index: int) -> CampaignStat:
    where = f"item {index}"
    if not isinstance(item, dict):
        raise ValueError(f"{where} is {_kind(item)}, expected an object")
    missing = [key for key in ("id", "records_count", "completion_percent") if key not in item]
    if missing:
        raise ValueError(f"{where} lacks the field(s) {', '.join(missing)}")
    campaign_id = item["id"]
    if not isinstance(campaign_id, str) or not CAMPAIGN_ID.fullmatch(campaign_id):
        shown = repr(campaign_id[:40]) if isinstance(campaign_id, str) else _kind(campaign_id)
        raise ValueError(f"{where}: id {shown} is not a campaign id (five of 0-9, A-Z, a-z)")
    count = item["records_count"]
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _BIGINT_MAX:
        raise ValueError(f"{where}: records_count must be a whole number >= 0, got {_kind(count)}")
    percent = item["completion_percent"]
    if (
        isinstance(percent, bool)
        or not isinstance(percent, int | float)
        or not math.isfinite(percent)
        or not 0 <= percent <= 100
    ):
        raise ValueError(
            f"{where}: completion_percent must be a number from 0 to 100, got {_kind(percent)}"
        )
    return CampaignStat(campaign_id, count, float(percent))


def parse_stats(body: bytes) -> tuple[CampaignStat, ...]:
    """Validate an answer of ``GET /outbounds/stats``: the active campaigns, each once.

    ``completion_percent`` may be an integer; fields beyond the three used are ignored.
    """
    items = _json_array(body, of="campaigns", campaign_id="", subject=STATS_SUBJECT)
    return tuple(
        _each(
            items,
            _campaign_stat,
            key=lambda s: s.campaign_id,
            key_name="id",
            campaign_id="",
            subject=STATS_SUBJECT,
        )
    )
