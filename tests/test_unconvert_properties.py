"""Properties of worker.schema.unconvert: the exact inverse of worker.schema.convert."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import ConversionError
from worker.schema.convert import BIGINT_RANGE, INT_RANGE, SECONDS_RANGE, convert_value
from worker.schema.mapping import ColumnMapping, LogicalType, TableMapping
from worker.schema.unconvert import unconvert_row, unconvert_value

TABLE = TableMapping(
    "t", {"id": ColumnMapping("id", LogicalType.parse("bigint"), nullable=False)}, ("id",)
)
MS_IN_RANGE = st.integers(-30_610_224_000_000, 253_402_300_799_999)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def column(type_text: str) -> ColumnMapping:
    return ColumnMapping("c", LogicalType.parse(type_text))


def forward(type_text: str, value: Any) -> Any:
    return convert_value(TABLE, column(type_text), value)


def inverse(type_text: str, value: Any) -> Any:
    return unconvert_value(TABLE, column(type_text), value)


def round_trip(type_text: str, value: Any) -> Any:
    return inverse(type_text, forward(type_text, value))


@given(st.integers(*BIGINT_RANGE))
def test_bigint_round_trips_exactly_beyond_2_53(number: int) -> None:
    assert round_trip("bigint", number) == number
    # and from the wire form producers use above 2^53 (decimal text)
    assert round_trip("bigint", str(number)) == number


@given(st.integers(*INT_RANGE))
def test_integer_round_trips(number: int) -> None:
    assert round_trip("integer", number) == number


@given(MS_IN_RANGE)
def test_timestamp_ms_round_trips(ms: int) -> None:
    assert round_trip("timestamp_ms", ms) == ms


@given(st.integers(*SECONDS_RANGE))
def test_timestamp_s_round_trips(seconds: int) -> None:
    assert round_trip("timestamp_s", seconds) == seconds


@given(MS_IN_RANGE)
def test_timestamp_s_floors_milliseconds_it_cannot_hold(ms: int) -> None:
    moment = forward("timestamp_ms", ms)
    assert inverse("timestamp_s", moment) == ms // 1000
    assert forward("timestamp_s", inverse("timestamp_s", moment)) <= moment


@given(MS_IN_RANGE)
def test_timestamp_text_round_trips_sqlite_datetime_text(ms: int) -> None:
    moment = forward("timestamp_ms", ms)
    text = inverse("timestamp_text", moment)
    assert forward("timestamp_text", text) == moment
    assert inverse("timestamp_text", forward("timestamp_text", text)) == text


@pytest.mark.parametrize("stored", [0, 1])
def test_boolean_round_trips_to_zero_or_one(stored: int) -> None:
    assert round_trip("boolean", stored) == stored
    assert inverse("boolean", bool(stored)) == stored  # a driver returning bool


def test_boolean_other_than_zero_or_one_is_an_error() -> None:
    with pytest.raises(ConversionError, match="0 or 1"):
        inverse("boolean", 2)


@given(JSON_VALUES)
def test_json_round_trips_compact_stringify_text(value: Any) -> None:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert round_trip("json", text) == text


def test_json_respaced_by_the_server_comes_back_compact() -> None:
    assert inverse("json", '{"b": [1, 2], "a": "é"}') == '{"b":[1,2],"a":"é"}'


@given(st.text())
def test_text_round_trips(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return  # refused forward (unpaired surrogate)
    assert round_trip("text", text) == text


@given(st.binary())
def test_blob_round_trips(data: bytes) -> None:
    assert round_trip("blob", data) == data


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_real_round_trips(number: float) -> None:
    assert round_trip("real", number) == number


@given(st.decimals(min_value=-(10**13) + 1, max_value=10**13 - 1, places=6))
def test_decimal_round_trips_as_numeric_text(number: Decimal) -> None:
    assert forward("decimal(20,6)", round_trip("decimal(20,6)", number)) == number


def test_wrong_type_is_one_line_error_naming_the_column() -> None:
    with pytest.raises(ConversionError) as caught:
        inverse("timestamp_ms", "2024-01-01")
    assert "t.c" in str(caught.value) and "\n" not in str(caught.value)


def test_unconvert_row_maps_every_column_and_keeps_null() -> None:
    table = TableMapping(
        "t",
        {
            "id": ColumnMapping("id", LogicalType.parse("bigint"), nullable=False),
            "at": ColumnMapping("at", LogicalType.parse("timestamp_ms")),
        },
        ("id",),
    )
    row = unconvert_row(table, {"id": 2**60, "at": None, "extra": 1})
    assert row == {"id": 2**60, "at": None}
    assert unconvert_row(table, {"id": 1, "at": datetime(1970, 1, 1, 0, 0, 1)})["at"] == 1000
