"""worker.envelope.parse_json: the fast parser never changes what the stdlib decoder decides."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.envelope import decode_event, parse_json
from worker.errors import EnvelopeError


def _reference(raw: bytes) -> tuple[str, Any]:
    """The contract's reference: the stdlib decoder, NaN/Infinity refused."""
    try:
        return "ok", json.loads(raw.decode("utf-8"), parse_constant=_refuse)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "error", None


def _refuse(name: str) -> Any:
    raise ValueError(name)


def _ours(raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", parse_json(raw)
    except EnvelopeError:
        return "error", None


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


@given(JSON_VALUES)
def test_valid_documents_parse_to_the_same_values(value: Any) -> None:
    """Integers beyond 64 bits stay exact integers; floats are the same doubles."""
    raw = json.dumps(value).encode("utf-8")
    assert _ours(raw) == _reference(raw)
    assert _ours(raw) == ("ok", value)


TOKENS = st.sampled_from(
    [b"{", b"}", b"[", b"]", b",", b":", b'"a"', b"1", b"-", b"0", b"9" * 20, b".5", b"e9",
     b"NaN", b"Infinity", b"true", b"nul", b" ", b"\t", b"\x0c", b"\\", b'"\\ud800"', b"\xff",
     b"\xef\xbb\xbf", b"1e400", b'"\x01"', b'"\\u0000"']
)  # fmt: skip


@given(st.lists(TOKENS, max_size=12).map(b"".join) | st.binary(max_size=30))
def test_any_bytes_get_the_stdlib_verdict(raw: bytes) -> None:
    """Whatever orjson would say, the result (or the refusal) is the stdlib decoder's."""
    assert _ours(raw) == _reference(raw)


@pytest.mark.parametrize(
    "raw",
    [b'{"a": NaN}', b'"\\ud800"', b"\xef\xbb\xbf{}", b"[1e400]", b"[" * 5000],
)
def test_inputs_orjson_refuses_get_the_stdlib_verdict(raw: bytes) -> None:
    """NaN, a lone surrogate, a BOM, 1e400, deep nesting: the stdlib decides, not orjson."""
    assert _ours(raw) == _reference(raw)


def test_a_huge_integer_key_is_exact() -> None:
    """A key beyond 64 bits (a decimal string is the contract, a number must not round)."""
    raw = (
        b'{"v":1,"table":"t","op":"delete","key":{"id":123456789012345678901234567890},'
        b'"row":null,"ts_ms":1,"event_id":"e"}'
    )
    assert decode_event(raw).key == {"id": 123456789012345678901234567890}


def test_an_unhashable_op_is_refused_with_a_reason() -> None:
    """An `op` that is a list is an off-contract envelope (dead-lettered), not a TypeError."""
    raw = b'{"v":1,"table":"t","op":[],"key":{"id":1},"row":null,"ts_ms":1,"event_id":"e"}'
    with pytest.raises(EnvelopeError, match="op must be 'upsert' or 'delete'"):
        decode_event(raw)
