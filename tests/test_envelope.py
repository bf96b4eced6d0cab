"""The event envelope v1: encode/decode round trips and strict decoding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.envelope import (
    MAX_SAFE_INTEGER,
    decode_event,
    encode_event,
    encode_key,
    new_event,
)
from worker.errors import EnvelopeError

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)


def _wire(value: Any) -> Any:
    """What a value becomes after the round trip: big integers travel as strings."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        return str(value)
    return value


@given(
    table=names,
    key=st.dictionaries(
        names, st.text(max_size=10) | st.integers(0, 10**6), min_size=1, max_size=3
    ),
    row=st.dictionaries(names, values, max_size=6),
    ts_ms=st.integers(0, 2**53),
    op=st.sampled_from(["upsert", "delete"]),
)
def test_decode_inverts_encode(
    table: str, key: dict[str, Any], row: dict[str, Any], ts_ms: int, op: Any
) -> None:
    """decode(encode(e)) == e, except that integers beyond 2^53 come back as decimal text."""
    full_row = {**row, **key}
    event = new_event(table, op, key, full_row, ts_ms=ts_ms, origin="backfill")
    msg_key, msg_value = encode_event(event)
    decoded = decode_event(msg_value)
    assert decoded.row == {k: _wire(v) for k, v in full_row.items()}
    assert (decoded.table, decoded.op, decoded.key, decoded.ts_ms) == (table, op, key, ts_ms)
    assert (decoded.event_id, decoded.origin) == (event.event_id, "backfill")
    assert msg_key == encode_key(key)


@given(st.dictionaries(names, st.text(max_size=5) | st.integers(), min_size=1, max_size=4))
def test_message_key_is_canonical_json(key: dict[str, Any]) -> None:
    """Key bytes do not depend on dict order: sorted keys, no spaces."""
    reordered = dict(reversed(list(key.items())))
    assert encode_key(key) == encode_key(reordered)
    # Sorted keys, no spaces between tokens (a name may itself hold ", ", so no substring test)
    decoded = json.loads(encode_key(key))
    assert list(decoded) == sorted(key)
    compact = json.dumps(decoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert encode_key(key) == compact.encode()


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_envelope_error(raw: bytes) -> None:
    """Decoding is total: garbage is an EnvelopeError with a reason, never a crash."""
    try:
        decode_event(raw)
    except EnvelopeError as exc:
        assert str(exc)


def _valid(**changes: Any) -> bytes:
    body: dict[str, Any] = {
        "v": 1,
        "table": "user",
        "op": "upsert",
        "key": {"id": "a"},
        "row": {"id": "a", "n": 1},
        "ts_ms": 1,
        "event_id": "e1",
        "origin": "app",
    }
    body.update(changes)
    for name in [k for k, v in changes.items() if v is _DROP]:
        del body[name]
    return json.dumps(body).encode()


_DROP = object()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{nope", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1]", "not an object"),
        (_valid(v=2), "unsupported envelope version"),
        (_valid(v=True), "unsupported envelope version"),
        (_valid(v=1.0), "unsupported envelope version"),
        (_valid(op="merge"), "op must be"),
        (_valid(key={}), "key must be a non-empty object"),
        (_valid(row=None), "an upsert needs a row"),
        (_valid(ts_ms=-1), "ts_ms"),
        (_valid(ts_ms=1.5), "ts_ms"),
        (_valid(event_id=""), "event_id"),
        (_valid(table=_DROP), "missing field"),
        (_valid(extra=1), "unknown field"),
        (_valid(row={"id": "b"}), "differs between key and row"),
        (_valid(row={"id": "a", "n": [1]}), "array"),
        (_valid(row={"id": "a", "n": {"x": 1}}), "object other than"),
        (_valid(row={"id": "a", "n": {"$base64": "!!"}}), "invalid $base64"),
        (b'{"v":1,"table":"t","op":"upsert","key":{"id":NaN}}', "NaN is not valid JSON"),
    ],
)
def test_off_contract_envelopes_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    """Strict decoding: each violation raises EnvelopeError naming what is wrong."""
    with pytest.raises(EnvelopeError, match=reason.replace("$", r"\$")):
        decode_event(raw)


def test_delete_without_before_image_and_missing_origin_are_accepted() -> None:
    """`row` may be null for a delete; `origin` defaults to "app"."""
    event = decode_event(_valid(op="delete", row=None, origin=_DROP))
    assert (event.op, event.row, event.origin) == ("delete", None, "app")


def test_blobs_travel_as_base64_objects() -> None:
    """bytes → {"$base64": …} on the wire and back to bytes."""
    _, value = encode_event(new_event("f", "upsert", {"id": 1}, {"id": 1, "b": b"\x00\xff"}))
    assert json.loads(value)["row"]["b"] == {"$base64": "AP8="}
    assert decode_event(value).row == {"id": 1, "b": b"\x00\xff"}


@pytest.mark.parametrize(
    "row",
    [
        {"id": 1, "x": float("nan")},
        {"id": 1, "b": b"blob", "x": float("inf")},  # after a value that needs `to_wire`
        {"id": 1, "big": 2**60, "x": float("nan")},
    ],
)
def test_nan_cannot_be_encoded(row: dict[str, Any]) -> None:
    """JSON has no NaN: encoding one is an EnvelopeError, never `null` on the topic."""
    with pytest.raises(EnvelopeError, match="cannot be encoded"):
        encode_event(new_event("t", "upsert", {"id": 1}, row))
