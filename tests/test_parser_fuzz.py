"""Property tests of the status parser: it never crashes, and what it accepts can be stored.

``parse_statuses`` is the only gate between Thulium's answer and SQL, so two properties
matter: any input ends in a ``Snapshot`` or a ``PayloadError`` (never another exception),
and any ``Snapshot`` it returns is written by the real loader to the real database and read
back unchanged (NUL characters, lone surrogates, out-of-range integers and values longer than
the schema's indexes can hold stop at the gate).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from etl.errors import PayloadError
from etl.load import apply_snapshots
from etl.records import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    READ_WHOLE_BYTES,
    Snapshot,
    Status,
    parse_statuses,
)

CAMPAIGN = "00001"
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
EMOJI = "\U0001f600"  # four bytes of UTF-8: the widest a character gets


def incompressible(n: int) -> str:
    """``n`` distinct-looking four-byte characters that no compression shrinks."""
    return "".join(chr(0x20000 + (i * 7919) % 0xA000) for i in range(n))


PURE = settings(max_examples=200, deadline=None)


def outcome(body: bytes) -> Snapshot | PayloadError:
    """Parse, turning the one allowed exception into a value; anything else propagates."""
    try:
        snapshot = parse_statuses(body, campaign_id=CAMPAIGN)
    except PayloadError as exc:
        assert exc.campaign_id == CAMPAIGN
        assert str(exc).strip()
        return exc
    assert isinstance(snapshot, Snapshot)
    assert snapshot.campaign_id == CAMPAIGN
    assert all(isinstance(status, Status) for status in snapshot.statuses)
    return snapshot


# -- anything in, Snapshot or PayloadError out --------------------------------------------------


@PURE
@given(st.binary(max_size=2_000))
@example(b"")
@example(b"\xff\xfe[]")
@example(b"[" * 100_000)
@example(b'{"a":' * 50_000)
@example(b"[" + b"9" * 5_000 + b"]")
@example(b'[{"status_id": 1, "status_id": 2}]')
@example(b"[NaN]")
@example(b"[-Infinity]")
@example(b'["\\ud800"]')
@example(
    b'[{"status_id": "3", "system_status": "TO_CALL", '
    b'"dictionary_status_id": null, "name": "Nowy"}}'
)
def test_any_bytes_give_a_snapshot_or_a_payload_error(body: bytes) -> None:
    outcome(body)


# Any code point: NULs, control characters and lone surrogates included.
nasty_text = st.text(
    alphabet=st.characters() | st.characters(categories=["Cs"]) | st.sampled_from("\x00\x1f"),
    max_size=20,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=10**300)
    | st.integers(min_value=-(10**300), max_value=-(2**63) + 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | nasty_text
    | st.sampled_from(["", " ", "\x00", "\ud800", "TO_CALL", "3", "\udfff\ud800"]),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["status_id", "system_status", "dictionary_status_id", "name"])
            | nasty_text,
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


def status_like() -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the four fields, each of which may hold a wrong kind of value."""
    return st.fixed_dictionaries(
        {
            "status_id": json_values,
            "system_status": json_values,
            "dictionary_status_id": json_values,
            "name": json_values,
        }
    )


@PURE
@given(json_values | st.lists(status_like(), max_size=4) | st.lists(json_values, max_size=4))
def test_any_json_value_gives_a_snapshot_or_a_payload_error(value: Any) -> None:
    outcome(json.dumps(value).encode("ascii"))
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8", errors="surrogatepass")
    outcome(raw)


@pytest.mark.parametrize(
    "item",
    [
        {"status_id": "1", "system_status": "CALL", "dictionary_status_id": None, "name": "a\x00"},
        {"status_id": "1", "system_status": "CALL\ud800", "dictionary_status_id": None, "name": ""},
        {"status_id": "\x00", "system_status": "CALL", "dictionary_status_id": None, "name": ""},
        {"status_id": "1", "system_status": "CALL", "dictionary_status_id": 2**63, "name": ""},
        {
            "status_id": "1",
            "system_status": "CALL",
            "dictionary_status_id": -(2**63) - 1,
            "name": "",
        },
        {"status_id": "1", "system_status": "CALL", "dictionary_status_id": 1.0, "name": ""},
        {"status_id": "1", "system_status": "CALL", "dictionary_status_id": True, "name": ""},
        {"status_id": True, "system_status": "CALL", "dictionary_status_id": None, "name": ""},
        {"status_id": 1.5, "system_status": "CALL", "dictionary_status_id": None, "name": ""},
        {"status_id": " ", "system_status": "CALL", "dictionary_status_id": None, "name": ""},
        {"status_id": "1", "system_status": "", "dictionary_status_id": None, "name": ""},
        {
            "status_id": "1",
            "system_status": "CALL",
            "dictionary_status_id": None,
            "name": "x" * (MAX_NAME_CHARS + 1),
        },
        {
            "status_id": "x" * (MAX_ID_CHARS + 1),
            "system_status": "CALL",
            "dictionary_status_id": None,
            "name": "",
        },
        {
            "status_id": 10**MAX_ID_CHARS,
            "system_status": "CALL",
            "dictionary_status_id": None,
            "name": "",
        },
        {
            "status_id": "1",
            "system_status": "C" * (MAX_ID_CHARS + 1),
            "dictionary_status_id": None,
            "name": "",
        },
        {"status_id": "1", "system_status": "CALL", "name": ""},
    ],
    ids=[
        "nul-name",
        "surrogate-code",
        "nul-id",
        "dict-id-too-big",
        "dict-id-too-small",
        "dict-id-float",
        "dict-id-bool",
        "id-bool",
        "id-float",
        "id-blank",
        "code-empty",
        "name-too-long",
        "id-too-long",
        "integer-id-too-long",
        "code-too-long",
        "field-missing",
    ],
)
def test_unstorable_items_are_rejected_with_a_payload_error(item: dict[str, Any]) -> None:
    body = json.dumps([item]).encode("ascii")

    with pytest.raises(PayloadError) as caught:
        parse_statuses(body, campaign_id=CAMPAIGN)

    assert "item 0" in str(caught.value)


def test_status_ids_that_collide_once_canonical_are_rejected() -> None:
    items = [
        {"status_id": 12, "system_status": "CALL", "dictionary_status_id": None, "name": "a"},
        {"status_id": "12", "system_status": "CALL", "dictionary_status_id": None, "name": "b"},
    ]

    with pytest.raises(PayloadError, match="appears twice"):
        parse_statuses(json.dumps(items).encode(), campaign_id=CAMPAIGN)


# -- well-formed answers parse back exactly and can be stored ---------------------------------

clean_char = st.characters(codec="utf-8", exclude_characters="\x00")
clean_text = st.text(alphabet=clean_char, max_size=40)
nonblank_text = clean_text.filter(lambda s: s.strip() != "")
status_ids = st.integers() | st.integers(min_value=10**18, max_value=10**80) | nonblank_text
dictionary_ids = (
    st.none()
    | st.integers(min_value=BIGINT_MIN, max_value=BIGINT_MAX)
    | st.sampled_from([BIGINT_MIN, BIGINT_MAX, 0, -1])
)
system_statuses = (
    st.sampled_from(["TO_CALL", "CALL", "NO_CALL", "CALL_PROGRESSIVE"]) | nonblank_text
)

items = st.fixed_dictionaries(
    {
        "status_id": status_ids,
        "system_status": system_statuses,
        "dictionary_status_id": dictionary_ids,
        "name": clean_text,
    }
)
status_lists = st.lists(items, max_size=12, unique_by=lambda item: str(item["status_id"]))


def near_limit(limit: int) -> st.SearchStrategy[str]:
    """Texts at or just under ``limit`` characters (a drawn pattern repeated), wide ones too."""
    wide = st.sampled_from([EMOJI, "\u0142", "x", incompressible(1)])
    patterns = st.lists(wide | clean_char, min_size=1, max_size=30).map("".join)
    return st.builds(
        lambda pattern, short: (pattern * (limit // len(pattern) + 1))[: limit - short],
        patterns.filter(lambda s: s.strip() != ""),
        st.integers(min_value=0, max_value=3),
    ).filter(lambda s: s.strip() != "")


long_items = st.fixed_dictionaries(
    {
        "status_id": near_limit(MAX_ID_CHARS) | st.integers(min_value=10**98, max_value=10**99),
        "system_status": near_limit(MAX_ID_CHARS),
        "dictionary_status_id": dictionary_ids,
        "name": near_limit(MAX_NAME_CHARS),
    }
)
long_status_lists = st.lists(
    long_items, min_size=1, max_size=3, unique_by=lambda item: str(item["status_id"])
)


def expected(statuses: list[dict[str, Any]]) -> tuple[Status, ...]:
    return tuple(
        Status(
            status_id=str(item["status_id"]),
            system_status=item["system_status"],
            dictionary_status_id=item["dictionary_status_id"],
            name=item["name"],
        )
        for item in statuses
    )


@PURE
@given(status_lists, st.booleans())
def test_well_formed_answers_parse_back_exactly(
    statuses: list[dict[str, Any]], ascii: bool
) -> None:
    body = json.dumps(statuses, ensure_ascii=ascii).encode("utf-8")

    snapshot = parse_statuses(body, campaign_id=CAMPAIGN)

    assert snapshot == Snapshot(CAMPAIGN, expected(statuses))


def _store_and_read_back(engine: Engine, snapshot: Snapshot) -> set[Status]:
    """Apply the snapshot in a transaction, read the campaign back, and roll it all back."""
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            counts = apply_snapshots(conn, [snapshot], run_id=None).counts
            assert counts[snapshot.campaign_id].inserted == len(snapshot.statuses)
            rows = conn.execute(
                text(
                    "SELECT status_id, system_status, dictionary_status_id, name FROM statuses "
                    "WHERE campaign_id = :c AND deleted_at IS NULL"
                ),
                {"c": snapshot.campaign_id},
            ).all()
        finally:
            tx.rollback()
    return {Status(*row) for row in rows}


# Every example rolls back what it wrote, so they may share the test's one migrated database.
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(statuses=status_lists | long_status_lists)
@example(
    statuses=[
        {
            "status_id": incompressible(MAX_ID_CHARS),
            "system_status": EMOJI * MAX_ID_CHARS,
            "dictionary_status_id": None,
            "name": incompressible(MAX_NAME_CHARS),
        },
        {
            "status_id": 10**MAX_ID_CHARS - 1,
            "system_status": incompressible(MAX_ID_CHARS),
            "dictionary_status_id": 0,
            "name": EMOJI * MAX_NAME_CHARS,
        },
    ]
)
@example(
    statuses=[
        {
            "status_id": "ąę\U0001f600",
            "system_status": "NOWY_\u2028STATUS",
            "dictionary_status_id": BIGINT_MIN,
            "name": "x" * MAX_NAME_CHARS,
        },
        {
            "status_id": 10**80,
            "system_status": "TO_CALL",
            "dictionary_status_id": BIGINT_MAX,
            "name": "tab\tnew\nline\\back\rslash \ufeff\uffff",
        },
        {"status_id": -7, "system_status": "TO_CALL", "dictionary_status_id": None, "name": ""},
    ]
)
def test_whatever_passes_the_parser_is_stored_unchanged(
    migrated: Engine, statuses: list[dict[str, Any]]
) -> None:
    snapshot = parse_statuses(json.dumps(statuses).encode("ascii"), campaign_id=CAMPAIGN)

    assert _store_and_read_back(migrated, snapshot) == set(snapshot.statuses)


@pytest.mark.parametrize(
    "body",
    [
        b"[{" + b'"k": 1, ' * 40_000 + b'"k": 1}]',
        b"[{" + b", ".join(b'"k%d": 1, "k%d": 2' % (i, i) for i in range(20_000)) + b"}]",
    ],
    ids=["one-key-repeated", "every-key-twice"],
)
def test_repeated_keys_are_found_in_time_linear_in_the_body(body: bytes) -> None:
    """A 240 KB object of repeated keys: linear detection takes milliseconds, quadratic
    minutes. A generous bound, not a benchmark."""
    started = time.perf_counter()
    with pytest.raises(PayloadError, match="repeats the key"):
        parse_statuses(body, campaign_id=CAMPAIGN)
    assert time.perf_counter() - started < 1.0


# -- a large valid-looking answer is refused for a flaw anywhere in it ---------------------------
# A large answer is read one item at a time; these flaws lie where reading item by item could
# overlook them, and each must be refused as when the answer is read whole.

_ITEM = b'{"status_id": "1", "system_status": "CALL", "dictionary_status_id": null, "name": "a"'
_DEEP = b"[" * 100_000 + b"]" * 100_000


def large(*items: bytes, bom: bytes = b"") -> bytes:
    """An answer of ``items`` after enough valid statuses to be read item by item."""
    filler = [
        b'{"status_id": "f%d", "system_status": "CALL", "dictionary_status_id": null, '
        b'"name": "filler"}' % n
        for n in range(READ_WHOLE_BYTES // 80 + 1)
    ]
    body = bom + b"[" + b", ".join([*filler, *items]) + b"]"
    assert len(body) > READ_WHOLE_BYTES
    return body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (large(_ITEM + b', "name": "b"}'), r"repeats the key\(s\) 'name'"),
        (large(_ITEM + b', "extra": {"k": 1, "k": 2}}'), r"repeats the key\(s\) 'k'"),
        (large(_ITEM + b', "extra": ' + _DEEP + b"}"), "nested too deeply"),
        # the answer's JSON is judged before its items
        (large(b'{"status_id": true}', _ITEM + b', "name": "b"}'), r"repeats the key\(s\) 'name'"),
        (large(_ITEM + b"}", _ITEM + b"}"), r"item \d+: status_id '1' appears twice"),
        (large(_ITEM + b"}", bom=b"\xef\xbb\xbf" * 2), "Unexpected UTF-8 BOM"),
        (large(_ITEM + b', "name": NaN}'), "NaN is not valid JSON"),
        (large(_ITEM.replace(b'"a"', b'"\\ud800"') + b"}"), "unpaired surrogate"),
    ],
    ids=[
        "repeated-status-field",
        "repeated-key-in-an-extra-field",
        "extra-field-nested-too-deep",
        "item-error-before-repeated-key",
        "status-id-twice",
        "two-byte-order-marks",
        "nan",
        "lone-surrogate",
    ],
)
def test_a_large_valid_looking_answer_with_one_flaw_is_refused_as_a_whole(
    body: bytes, message: str
) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_statuses(body, campaign_id=CAMPAIGN)


def test_a_large_answer_with_a_byte_order_mark_parses_as_without() -> None:
    body = large(_ITEM + b"}")

    assert parse_statuses(b"\xef\xbb\xbf" + body, campaign_id=CAMPAIGN) == parse_statuses(
        body, campaign_id=CAMPAIGN
    )


@PURE
@given(st.lists(status_like(), max_size=4))
def test_any_large_answer_gives_a_snapshot_or_a_payload_error(items: list[dict[str, Any]]) -> None:
    outcome(large(*(json.dumps(item).encode("ascii") for item in items)))
