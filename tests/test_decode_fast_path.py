"""worker.envelope.decode_fields (msgspec) decides every input as reference_decode_fields does."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.envelope import decode_fields, reference_decode_fields
from worker.errors import EnvelopeError

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
COLUMN_VALUES = (
    SCALARS
    | st.binary(max_size=6).map(lambda b: {"$base64": base64.b64encode(b).decode("ascii")})
    | st.sampled_from([{"$base64": "!!"}, {"$base64": 1}, {"x": 1}, [1], []])
)
COLUMNS = st.dictionaries(st.sampled_from(["id", "n", "é", ""]), COLUMN_VALUES, max_size=3)
# What a field may hold instead of its valid value: every other JSON kind, and near misses.
OFF_VALUES = (
    SCALARS
    | st.sampled_from([1.0, 2, -1, 0, "1", "", "UPSERT", [], {}, ["upsert"], 2**64, 1e300])
    | COLUMNS
)
VALID = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "table": st.text(min_size=1, max_size=5),
        "op": st.sampled_from(["upsert", "delete"]),
        "key": st.dictionaries(st.sampled_from(["id", "k"]), SCALARS, min_size=1, max_size=2),
        "row": COLUMNS | st.none(),
        "ts_ms": st.integers(0, 2**66),
        "event_id": st.text(min_size=1, max_size=5),
    },
    optional={"origin": st.text(max_size=5)},
)
FIELDS = ["v", "table", "op", "key", "row", "ts_ms", "event_id", "origin"]


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """A valid envelope, then a few of: a field dropped, replaced, repeated, or an unknown
    one added; written as raw JSON (repeated names, NaN) and sometimes cut or corrupted."""
    body = draw(VALID)
    if body["row"] is not None and draw(st.booleans()):  # the row repeats the key columns
        body["row"] = {**body["row"], **body["key"]}
    pairs = list(body.items())
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["drop", "replace", "repeat", "unknown"]))
        name = draw(st.sampled_from(FIELDS))
        if what == "drop":
            pairs = [(k, v) for k, v in pairs if k != name]
        elif what == "replace":
            pairs = [(k, draw(OFF_VALUES) if k == name else v) for k, v in pairs]
        elif what == "repeat":
            pairs.append((name, draw(OFF_VALUES | VALID.map(lambda d, n=name: d.get(n)))))
        else:
            pairs.append((draw(st.sampled_from(["x", "V", "rows"])), draw(SCALARS)))
    items = ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs)
    raw = ("{" + items + "}").encode("utf-8")
    damage = draw(st.sampled_from(["none"] * 6 + ["cut", "byte", "nan", "surrogate"]))
    if damage == "cut":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif damage == "byte":
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    elif damage == "nan":
        raw = raw.replace(b'"ts_ms":', b'"ts_ms":NaN,"x":', 1)
    elif damage == "surrogate":
        raw = raw.replace(b'"table":"', b'"table":"\\ud800', 1)
    return raw


def _verdict(decode: Any, raw: bytes | None) -> tuple[str, str]:
    """("ok", repr of the fields) or ("error", the exception's type and reason). repr, not
    ==, so that 1, 1.0 and True (equal in Python) count as different values."""
    try:
        return "ok", repr(decode(raw))
    except EnvelopeError as exc:
        return "error", f"EnvelopeError: {exc}"
    except Exception as exc:  # the reference's own (a 5,000-digit int: ValueError)
        return "error", f"{type(exc).__name__}: {exc}"


@settings(max_examples=400, deadline=None)
@given(envelopes())
def test_fast_decoder_accepts_and_refuses_as_the_reference(raw: bytes) -> None:
    """Same fields (same types) for what the reference accepts; the same error and reason
    for what it refuses."""
    assert _verdict(decode_fields, raw) == _verdict(reference_decode_fields, raw)


@settings(max_examples=100, deadline=None)
@given(VALID)
def test_valid_envelopes_take_the_fast_path_with_the_same_fields(body: dict[str, Any]) -> None:
    """A valid envelope (upsert with a row, or delete) decodes to the reference's fields."""
    if body["op"] == "upsert" and body["row"] is None:
        body["row"] = {}
    raw = json.dumps(body).encode("utf-8")
    assert _verdict(decode_fields, raw) == _verdict(reference_decode_fields, raw)


def test_special_inputs_get_the_reference_verdict() -> None:
    """Tombstone, repeated field, lone surrogate, 1e400, a 5,000-digit number, deep nesting."""
    head = b'{"v":1,"table":"t","op":"delete","key":{"id":'
    for raw in [
        None,
        head + b'1},"row":null,"ts_ms":1,"event_id":"e","v":2}',
        head + b'1},"row":null,"ts_ms":1,"event_id":"e","table":"u"}',
        head + b'"\\ud800"},"row":null,"ts_ms":1,"event_id":"e"}',
        head + b'1e400},"row":null,"ts_ms":1,"event_id":"e"}',
        head + b"7" * 5000 + b'},"row":null,"ts_ms":1,"event_id":"e"}',
        head + b"[" * 3000 + b"]" * 3000 + b'},"row":null,"ts_ms":1,"event_id":"e"}',
    ]:
        assert _verdict(decode_fields, raw) == _verdict(reference_decode_fields, raw)
