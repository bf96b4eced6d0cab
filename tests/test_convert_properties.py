"""Hypothesis properties of worker.schema.convert."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import ConversionError
from worker.schema.convert import BIGINT_RANGE, INT_RANGE, convert_value
from worker.schema.mapping import ColumnMapping, LogicalType, TableMapping

TABLE = TableMapping(
    "t", {"id": ColumnMapping("id", LogicalType.parse("bigint"), nullable=False)}, ("id",)
)
EPOCH = datetime(1970, 1, 1)
# Milliseconds covering the whole DATETIME range 1000-01-01..9999-12-31.
MS_IN_RANGE = st.integers(-30_610_224_000_000, 253_402_300_799_999)


def convert(type_text: str, value: object) -> object:
    return convert_value(TABLE, ColumnMapping("c", LogicalType.parse(type_text)), value)


@given(MS_IN_RANGE)
def test_timestamp_ms_round_trips_at_ms_precision(ms: int) -> None:
    """Every in-range ms value converts to the datetime exactly `ms` after the epoch."""
    moment = convert("timestamp_ms", ms)
    assert isinstance(moment, datetime)
    assert moment == EPOCH + timedelta(milliseconds=ms)
    assert moment.microsecond % 1000 == 0


@given(st.integers(-30_610_224_000, 253_402_300_799))
def test_timestamp_s_agrees_with_timestamp_ms(seconds: int) -> None:
    """s seconds and s*1000 milliseconds are the same instant."""
    assert convert("timestamp_s", seconds) == convert("timestamp_ms", seconds * 1000)


@given(st.integers(1, 200), st.data())
def test_strings_within_length_survive_unchanged(length: int, data: st.DataObject) -> None:
    """Any text (incl. 4-byte unicode) of at most n characters is returned as is."""
    text = data.draw(st.text(max_size=length))
    assert convert(f"string({length})", text) == text


@given(st.integers(1, 50), st.data())
def test_strings_over_length_always_raise(length: int, data: st.DataObject) -> None:
    """No text longer than n characters ever converts (nothing is truncated)."""
    text = data.draw(st.text(min_size=length + 1, max_size=length + 20))
    with pytest.raises(ConversionError):
        convert(f"string({length})", text)


@given(st.one_of(st.integers(max_value=INT_RANGE[0] - 1), st.integers(min_value=INT_RANGE[1] + 1)))
def test_ints_outside_int_range_always_raise(number: int) -> None:
    """integer columns reject everything MySQL INT cannot hold, as int or digit text."""
    for value in (number, str(number)):
        with pytest.raises(ConversionError):
            convert("integer", value)


@given(st.integers(*BIGINT_RANGE))
def test_bigints_round_trip_as_numbers_and_as_digit_strings(number: int) -> None:
    """Every 64-bit integer converts exactly, whether sent as a number or as text."""
    assert convert("bigint", number) == number
    assert convert("bigint", str(number)) == number


@given(st.integers().filter(lambda n: n not in (0, 1)))
def test_booleans_reject_every_integer_but_zero_and_one(number: int) -> None:
    """A boolean column never turns 2 or -1 into a truth value."""
    with pytest.raises(ConversionError):
        convert("boolean", number)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=10,
    )
)
def test_any_json_stringify_output_is_accepted_verbatim(document: object) -> None:
    """JSON.stringify output (any nesting) is valid JSON and is kept byte for byte."""
    text = json.dumps(document, ensure_ascii=False)
    assert convert("json", text) == text


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_sqlite_datetime_text_round_trips_truncated_to_ms(moment: datetime) -> None:
    """'YYYY-MM-DD HH:MM:SS.ffffff' text parses back to the same instant, cut to milliseconds."""
    text = moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    expected = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    for kind in ("timestamp_s", "timestamp_ms", "timestamp_text"):
        assert convert(kind, text) == expected


@given(st.decimals(min_value=-999_999, max_value=999_999, places=2, allow_nan=False))
def test_decimals_that_fit_round_trip_exactly(number: Decimal) -> None:
    """decimal(8,2) keeps every value with at most 6 integer digits and 2 decimals, as text too."""
    assert convert("decimal(8,2)", number) == number
    assert convert("decimal(8,2)", str(number)) == number


def _stdlib_accepts(text: str) -> bool:
    def refuse(name: str) -> object:
        raise ValueError(name)

    try:
        json.loads(text, parse_constant=refuse)
    except ValueError:
        return False
    return True


JSON_TOKENS = st.sampled_from(
    ["{", "}", "[", "]", ",", ":", '"a"', "1", "-", "0", "9" * 20, ".5", "e9", "NaN", "Infinity",
     "true", "nul", " ", "\t", "\x0c", "\\", '"\\ud800"', "\ufeff", "1e400", '"\x01"', '"\\u0000"']
)  # fmt: skip


@given(st.lists(JSON_TOKENS, max_size=12).map("".join) | st.text(max_size=20))
def test_json_column_accepts_exactly_what_the_stdlib_decoder_accepts(text: str) -> None:
    """The fast parser in front changes no verdict: valid JSON passes unchanged, the rest fails."""
    try:
        accepted = convert("json", text) == text
    except ConversionError:
        accepted = False
    assert accepted == _stdlib_accepts(text)
