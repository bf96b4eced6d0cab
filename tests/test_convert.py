"""Specification of worker.schema.convert: strict source → MySQL value conversion."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from worker.errors import ConversionError
from worker.schema.convert import convert_key, convert_row, convert_value, version_of
from worker.schema.mapping import ColumnMapping, LogicalType, TableMapping


def column(type_text: str, *, nullable: bool = True, name: str = "c") -> ColumnMapping:
    return ColumnMapping(name=name, type=LogicalType.parse(type_text), nullable=nullable)


USER = TableMapping(
    name="user",
    columns={
        "id": column("string(20)", nullable=False, name="id"),
        "email": column("string(255)", name="email"),
        "isActive": column("boolean", nullable=False, name="isActive"),
        "updatedAt": column("timestamp_s", nullable=False, name="updatedAt"),
        "updateCounter": column("bigint", name="updateCounter"),
    },
    primary_key=("id",),
    version_columns=("updatedAt", "updateCounter"),
)


def convert(type_text: str, value: Any, *, nullable: bool = True) -> Any:
    return convert_value(USER, column(type_text, nullable=nullable), value, {"id": "usr_1"})


# -- NULL ---------------------------------------------------------------------------------


def test_null_in_nullable_column_stays_null() -> None:
    """None is passed through for every nullable type."""
    for type_text in ("text", "integer", "boolean", "timestamp_s", "json", "blob", "real"):
        assert convert(type_text, None) is None


def test_null_in_not_null_column_is_an_error() -> None:
    """NOT NULL columns never receive a silent default."""
    with pytest.raises(ConversionError, match="NOT NULL"):
        convert("integer", None, nullable=False)


# -- integers -----------------------------------------------------------------------------


def test_int_range_is_checked_at_both_ends() -> None:
    """integer = MySQL INT: -2^31..2^31-1 fit, one beyond does not."""
    assert convert("integer", -(2**31)) == -(2**31)
    assert convert("integer", 2**31 - 1) == 2**31 - 1
    for outside in (2**31, -(2**31) - 1):
        with pytest.raises(ConversionError, match="INT range"):
            convert("integer", outside)


def test_bigint_above_2_pow_53_arrives_as_digit_string_and_is_exact() -> None:
    """Integers > 2^53 travel as decimal strings; they convert exactly."""
    assert convert("bigint", str(2**53 + 1)) == 2**53 + 1
    assert convert("bigint", "-9223372036854775808") == -(2**63)
    with pytest.raises(ConversionError, match="BIGINT range"):
        convert("bigint", str(2**63))


def test_current_timestamp_text_in_integer_column_is_an_error() -> None:
    """Text that is not a decimal integer never becomes a number."""
    with pytest.raises(ConversionError, match="not a decimal integer"):
        convert("bigint", "2024-01-01 00:00:00")
    with pytest.raises(ConversionError):
        convert("bigint", "")


@pytest.mark.parametrize("bad", ["12\n", " 12", "1_000", "\u0661\u0662", "0x1f", "1e3"])
def test_only_plain_ascii_digit_text_counts_as_an_integer(bad: str) -> None:
    """Python's int() accepts all of these; a strict converter does not."""
    with pytest.raises(ConversionError, match="not a decimal integer"):
        convert("bigint", bad)


def test_integral_float_is_accepted_but_fraction_is_not() -> None:
    """5.0 is an integer; 5.5 would need rounding, which is forbidden."""
    assert convert("bigint", 5.0) == 5
    with pytest.raises(ConversionError, match="fractional"):
        convert("bigint", 5.5)


def test_bool_in_integer_column_is_an_error() -> None:
    """True is not silently 1 in a numeric column."""
    with pytest.raises(ConversionError):
        convert("integer", True)


# -- booleans -----------------------------------------------------------------------------


def test_boolean_accepts_exactly_zero_and_one() -> None:
    """0/1 (and JSON false/true) map to False/True."""
    assert convert("boolean", 0) is False
    assert convert("boolean", 1) is True
    assert convert("boolean", True) is True


@pytest.mark.parametrize("bad", [2, -1, "true", "1", 1.0, ""])
def test_boolean_rejects_everything_else(bad: Any) -> None:
    """2, -1, text: never a silent false."""
    with pytest.raises(ConversionError, match="only 0 or 1"):
        convert("boolean", bad)


# -- timestamps ---------------------------------------------------------------------------


def test_seconds_timestamp_becomes_naive_utc_datetime() -> None:
    """1700000000 s is 2023-11-14 22:13:20 UTC."""
    assert convert("timestamp_s", 1700000000) == datetime(2023, 11, 14, 22, 13, 20)


def test_negative_and_pre_1970_and_post_2038_timestamps_convert() -> None:
    """Signed 64-bit seconds: before the epoch and after 2038 are ordinary values."""
    assert convert("timestamp_s", -1) == datetime(1969, 12, 31, 23, 59, 59)
    assert convert("timestamp_s", -86400 * 365) == datetime(1969, 1, 1)
    assert convert("timestamp_s", 2**31) == datetime(2038, 1, 19, 3, 14, 8)
    assert convert("timestamp_ms", -1) == datetime(1969, 12, 31, 23, 59, 59, 999000)


def test_milliseconds_keep_ms_precision() -> None:
    """timestamp_ms keeps the milliseconds DATETIME(3) can hold."""
    assert convert("timestamp_ms", 1700000000123) == datetime(2023, 11, 14, 22, 13, 20, 123000)


def test_fractional_seconds_truncate_to_ms() -> None:
    """Finer than ms is truncated toward the past, never rounded up."""
    assert convert("timestamp_s", 1.2349) == datetime(1970, 1, 1, 0, 0, 1, 234000)


def test_ms_value_in_seconds_column_is_an_error_naming_the_cause() -> None:
    """defaultNow() writes ms into a seconds column: reported, never guessed."""
    with pytest.raises(ConversionError, match="looks like milliseconds"):
        convert("timestamp_s", 1700000000123)


def test_timestamps_outside_datetime_range_are_errors() -> None:
    """DATETIME is 1000-01-01..9999-12-31; beyond is an error, not an overflow."""
    with pytest.raises(ConversionError, match="DATETIME range"):
        convert("timestamp_s", -40_000_000_000)
    with pytest.raises(ConversionError, match="DATETIME range"):
        convert("timestamp_ms", 10**20)


def test_current_timestamp_text_is_accepted_in_every_timestamp_kind() -> None:
    """SQLite DEFAULT CURRENT_TIMESTAMP writes 'YYYY-MM-DD HH:MM:SS' even in integer columns."""
    expected = datetime(2024, 2, 29, 12, 0, 1)
    for kind in ("timestamp_s", "timestamp_ms", "timestamp_text"):
        assert convert(kind, "2024-02-29 12:00:01") == expected


def test_mixed_storage_classes_in_one_column_convert_to_the_same_type() -> None:
    """One SQLite column may hold integer and text rows; both become datetimes."""
    as_int = convert("timestamp_s", 1709208001)
    as_text = convert("timestamp_s", "2024-02-29 12:00:01")
    assert as_int == as_text


def test_timestamp_text_with_offset_is_converted_to_utc() -> None:
    """ISO text with an offset is normalised to naive UTC."""
    assert convert("timestamp_text", "2024-01-01T02:00:00.5+02:00") == datetime(
        2024, 1, 1, 0, 0, 0, 500000
    )


@pytest.mark.parametrize("bad", ["yesterday", "2024-13-01 00:00:00", "", True])
def test_unparseable_timestamp_text_is_an_error(bad: Any) -> None:
    """Text that is not a calendar timestamp is reported."""
    with pytest.raises(ConversionError):
        convert("timestamp_text", bad)


# -- text, json, real, decimal, blob ------------------------------------------------------


def test_string_longer_than_its_column_is_never_truncated() -> None:
    """string(n) counts characters; n+1 characters is an error."""
    assert convert("string(3)", "abc") == "abc"
    with pytest.raises(ConversionError, match="never truncated"):
        convert("string(3)", "abcd")


def test_four_byte_unicode_counts_as_one_character() -> None:
    """An emoji is one character of a utf8mb4 VARCHAR."""
    assert convert("string(2)", "😀é") == "😀é"


def test_empty_and_whitespace_only_strings_survive_unchanged() -> None:
    """'' and '  ' are distinct valid values, not NULL."""
    assert convert("string(5)", "") == ""
    assert convert("string(5)", "  ") == "  "


def test_number_in_text_column_is_an_error() -> None:
    """No silent formatting of numbers into text."""
    with pytest.raises(ConversionError, match="only text"):
        convert("text", 12)


def test_json_is_validated_and_kept_verbatim() -> None:
    """Valid JSON text passes unchanged; invalid JSON and NaN are errors."""
    assert convert("json", '{"a": [1, 2]}') == '{"a": [1, 2]}'
    for bad in ("{a:1}", "NaN", ""):
        with pytest.raises(ConversionError, match="JSON"):
            convert("json", bad)


def test_real_accepts_numbers_only() -> None:
    """Integers widen to float; text and inf do not convert."""
    assert convert("real", 3) == 3.0
    assert isinstance(convert("real", 3), float)
    for bad in ("3.5", float("inf")):
        with pytest.raises(ConversionError):
            convert("real", bad)


def test_decimal_checks_scale_and_range_without_rounding() -> None:
    """decimal(5,2): 123.45 fits; 123.456 and 1000.00 do not."""
    assert convert("decimal(5,2)", "123.45") == Decimal("123.45")
    assert convert("decimal(5,2)", 0.1) == Decimal("0.1")
    with pytest.raises(ConversionError, match="decimal places"):
        convert("decimal(5,2)", "123.456")
    with pytest.raises(ConversionError, match="outside"):
        convert("decimal(5,2)", 1000)


def test_blob_accepts_bytes_only() -> None:
    """Bytes pass through; text in a blob column is an error."""
    assert convert("blob", bytearray(b"\x00\xff")) == b"\x00\xff"
    with pytest.raises(ConversionError, match="only bytes"):
        convert("blob", "AAE=")


def test_error_names_table_column_key_and_type_but_not_the_value() -> None:
    """The value may be personal data: only its type is named."""
    with pytest.raises(ConversionError) as info:
        convert_value(USER, USER.columns["email"], "x" * 300, {"id": "usr_1"})
    message = str(info.value)
    assert "user.email" in message and "usr_1" in message and "str" in message
    assert "xxxx" not in message


# -- rows and keys ------------------------------------------------------------------------

ROW = {"id": "usr_1", "email": "a@b.c", "isActive": 1, "updatedAt": 1700000000}


def test_convert_row_returns_every_column_in_mapping_order() -> None:
    """Missing nullable columns are NULL; order is the mapping's."""
    converted = convert_row(USER, dict(reversed(ROW.items())))
    assert list(converted) == list(USER.columns)
    assert converted["updateCounter"] is None
    assert converted["isActive"] is True


def test_convert_row_rejects_unknown_and_missing_required_columns() -> None:
    """An unmapped column or a missing NOT NULL column is an error."""
    with pytest.raises(ConversionError, match="unknown column"):
        convert_row(USER, {**ROW, "nickname": "x"})
    with pytest.raises(ConversionError, match="NOT NULL"):
        convert_row(USER, {k: v for k, v in ROW.items() if k != "isActive"})


def test_convert_key_requires_exactly_the_primary_key() -> None:
    """Extra or missing key columns are errors; whitespace-only keys are valid."""
    assert convert_key(USER, {"id": " "}) == {"id": " "}
    with pytest.raises(ConversionError, match="not part of the primary key"):
        convert_key(USER, {"id": "a", "email": "b"})
    with pytest.raises(ConversionError, match="missing"):
        convert_key(USER, {})


def test_version_of_reads_version_columns_in_order() -> None:
    """The version tuple is (updatedAt, updateCounter); () without version columns."""
    converted = convert_row(USER, {**ROW, "updateCounter": 7})
    assert version_of(USER, converted) == (datetime(2023, 11, 14, 22, 13, 20), 7)
    plain = TableMapping("t", {"id": column("bigint", name="id")}, ("id",))
    assert version_of(plain, {"id": 1}) == ()


@pytest.mark.parametrize("type_text", ["text", "string(10)", "json"])
def test_unpaired_surrogate_is_a_conversion_error_not_a_driver_crash(type_text: str) -> None:
    """JSON can carry "\\ud800"; utf8mb4 cannot store it, so the event is rejected (DLQ)."""
    value = '"\ud800"' if type_text == "json" else "a\ud800"
    with pytest.raises(ConversionError, match="surrogate"):
        convert(type_text, value)
    assert convert(type_text, '"🚀"' if type_text == "json" else "🚀") is not None
