"""Source (SQLite / wire) value → MySQL parameter value, per logical type. Pure, strict.

A value that does not fit its column's logical type raises `ConversionError` naming table,
column, key and the value's *type* (never the value: it may be personal data). Nothing is
ever truncated, rounded or defaulted silently: guessing is what the mapping is for.

Decisions worth knowing (see docs/mapping.md):

- Integers may arrive as decimal-digit strings (above 2^53 JSON numbers lose precision,
  so producers send them as text); any other text in a numeric column is an error.
- `timestamp_s` holding a value only plausible as milliseconds (Drizzle's deprecated
  `.defaultNow()` writes ms into seconds columns) is an error that says so: the column must
  be remapped as `timestamp_ms` or the row fixed. Seconds and ms overlap for small values,
  so no rule can tell them apart safely.
- Every timestamp kind also accepts `YYYY-MM-DD HH:MM:SS[.fff]` text: that is what SQLite's
  `DEFAULT CURRENT_TIMESTAMP` writes, even into an `integer` column. Such text is UTC.
- DATETIME(3) keeps milliseconds: finer parts are truncated toward the past (floor), the
  same way at every precision, so a value never moves to a different millisecond twice.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import orjson

from worker.errors import ConversionError
from worker.schema.mapping import ColumnMapping, LogicalType, TableMapping

INT_RANGE = (-(2**31), 2**31 - 1)
BIGINT_RANGE = (-(2**63), 2**63 - 1)

EPOCH = datetime(1970, 1, 1)
# MySQL DATETIME range (https://dev.mysql.com/doc/refman/8.0/en/datetime.html).
DATETIME_MIN = datetime(1000, 1, 1)
DATETIME_MAX = datetime(9999, 12, 31, 23, 59, 59, 999000)
_MAX_SECONDS = int((DATETIME_MAX - EPOCH).total_seconds())
_MIN_SECONDS = int((DATETIME_MIN - EPOCH).total_seconds())
SECONDS_RANGE = (_MIN_SECONDS, _MAX_SECONDS)
MS_RANGE = (_MIN_SECONDS * 1000, _MAX_SECONDS * 1000 + 999)

# ASCII digits only, matched in full: `\d` would accept other scripts' digits (which int()
# converts) and `$` would accept a trailing newline.
_DIGITS = re.compile(r"[+-]?[0-9]+")
_SQLITE_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
)
_ISO_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class _Unfit(Exception):
    """Raised by a converter; `convert_value` adds table, column, key and the value type."""


def _integer_of(value: Any) -> int:
    """An exact integer from an int, an integral float or a decimal-digit string."""
    if isinstance(value, bool):
        raise _Unfit("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise _Unfit("a number with a fractional part (or inf/nan) is not an integer")
        return int(value)
    if isinstance(value, str):
        if _DIGITS.fullmatch(value):
            return int(value)
        raise _Unfit("text that is not a decimal integer")
    raise _Unfit("expected an integer")


def _ranged(low: int, high: int, what: str) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        number = _integer_of(value)
        if not low <= number <= high:
            raise _Unfit(f"integer outside the {what} range {low}..{high}")
        return number

    return convert


def _boolean(value: Any) -> bool:
    # Drizzle's mode:"boolean" stores exactly 0 or 1; anything else is a data error,
    # never a silent false. JSON true/false (a Python bool) is unambiguous too.
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    raise _Unfit("a boolean column accepts only 0 or 1")


def _datetime_from_ms(ms: int) -> datetime:
    # Range-check the integer first: timedelta overflows long before int does.
    if not MS_RANGE[0] <= ms <= MS_RANGE[1]:
        raise _Unfit("timestamp outside the DATETIME range 1000-01-01..9999-12-31")
    # Whole seconds + microseconds: twice as fast as timedelta(milliseconds=…) (measured),
    # and floor division keeps pre-1970 values exact.
    return EPOCH + timedelta(0, ms // 1000, ms % 1000 * 1000)


def _ms_from_number(value: Any, per_second: int) -> int:
    """Milliseconds since the epoch from a number of units (`per_second` units per s)."""
    if type(value) is int:  # the common case, first
        return value * 1000 // per_second
    if isinstance(value, bool):
        raise _Unfit("a boolean is not a timestamp")
    if isinstance(value, int) or (isinstance(value, str) and _DIGITS.fullmatch(value)):
        return (int(value) * 1000) // per_second
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Unfit("inf/nan is not a timestamp")
        # Decimal(repr) keeps the float's shortest decimal form: 1.5 s → exactly 1500 ms.
        return math.floor(Decimal(repr(value)) * 1000 / per_second)
    raise _Unfit("expected a number or 'YYYY-MM-DD HH:MM:SS' text")


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _parse_datetime_text(value: str) -> datetime:
    """ISO-8601 / SQLite datetime text; no offset means UTC (SQLite's datetime() is UTC)."""
    if not _ISO_PREFIX.match(value):
        raise _Unfit("text that is not an ISO-8601 / 'YYYY-MM-DD HH:MM:SS' timestamp")
    text = value
    # fromisoformat accepts at most 6 fractional digits; SQLite may write more.
    if m := re.search(r"\.(\d{7,})", text):
        text = text[: m.start()] + "." + m.group(1)[:6] + text[m.end() :]
    try:
        moment = _naive_utc(datetime.fromisoformat(text))
    except ValueError:
        raise _Unfit("text that is not a valid calendar timestamp") from None
    if not DATETIME_MIN <= moment <= DATETIME_MAX:
        raise _Unfit("timestamp outside the DATETIME range 1000-01-01..9999-12-31")
    return moment


def _timestamp_s(value: Any) -> datetime:
    if isinstance(value, str) and _SQLITE_DATETIME.fullmatch(value):
        return _parse_datetime_text(value)
    ms = _ms_from_number(value, per_second=1)
    seconds = ms // 1000
    if seconds > _MAX_SECONDS and _MIN_SECONDS <= seconds // 1000 <= _MAX_SECONDS:
        raise _Unfit(
            "seconds value beyond year 9999 looks like milliseconds (Drizzle defaultNow()?); "
            "map the column as timestamp_ms or fix the row"
        )
    return _datetime_from_ms(ms)


def _timestamp_ms(value: Any) -> datetime:
    if type(value) is int and MS_RANGE[0] <= value <= MS_RANGE[1]:  # the usual value
        return EPOCH + timedelta(0, value // 1000, value % 1000 * 1000)
    if isinstance(value, str) and _SQLITE_DATETIME.fullmatch(value):
        return _parse_datetime_text(value)
    return _datetime_from_ms(_ms_from_number(value, per_second=1000))


def _timestamp_text(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _Unfit("a timestamp_text column accepts only text")
    return _parse_datetime_text(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Unfit("a text column accepts only text")
    if not value.isascii():
        # JSON may carry an unpaired surrogate ("\ud800"); utf8mb4 cannot store it, and
        # the driver would fail on it mid-batch instead of this event alone going to the DLQ.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Unfit("text with an unpaired UTF-16 surrogate is not valid UTF-8") from None
    return value


def _string(length: int) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = _text(value)
        # VARCHAR(n) counts characters (code points in utf8mb4), as len() does.
        if len(text) > length:
            raise _Unfit(f"text longer than string({length}) (never truncated)")
        return text

    return convert


def _reject_constant(name: str) -> Any:
    raise _Unfit(f"JSON {name} is not valid JSON for MySQL")


# Built once: json.loads(…, parse_constant=…) builds a decoder per call (measured: most of
# the cost of a small JSON column).
_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _json(value: Any) -> str:
    text = _text(value)
    try:
        # orjson (RFC 8259 only) accepts a subset of what the stdlib decoder accepts, 5x
        # faster: its yes is final, its no goes to the stdlib, whose verdict has always been
        # the rule here (tested in tests/test_convert_properties.py). The one exception:
        # nesting deeper than Python's recursion limit, which the stdlib cannot parse at all.
        orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            _JSON_DECODER.decode(text)
        except json.JSONDecodeError:
            raise _Unfit("text that is not valid JSON") from None
    return text


def _real(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Unfit("a real column accepts only numbers")
    number = float(value)
    if not math.isfinite(number):
        raise _Unfit("inf/nan cannot be stored in DOUBLE")
    return number


def _decimal(precision: int, scale: int) -> Callable[[Any], Decimal]:
    def convert(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise _Unfit("a decimal column accepts only numbers or numeric text")
        try:
            number = Decimal(repr(value) if isinstance(value, float) else value)
        except InvalidOperation:
            raise _Unfit("text that is not a decimal number") from None
        if not number.is_finite():
            raise _Unfit("inf/nan is not a decimal")
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)  # finite, checked above
        if -exponent > scale and number != number.quantize(Decimal(1).scaleb(-scale)):
            raise _Unfit(f"more than {scale} decimal places (never rounded)")
        if abs(number) >= Decimal(10) ** (precision - scale):
            raise _Unfit(f"number outside decimal({precision},{scale})")
        return number

    return convert


def _blob(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise _Unfit("a blob column accepts only bytes")


_SIMPLE: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "integer": _ranged(*INT_RANGE, "INT"),
    "bigint": _ranged(*BIGINT_RANGE, "BIGINT"),
    "boolean": _boolean,
    "timestamp_s": _timestamp_s,
    "timestamp_ms": _timestamp_ms,
    "timestamp_text": _timestamp_text,
    "json": _json,
    "real": _real,
    "blob": _blob,
}


# The Python type each kind's converter returns for a non-NULL value (the sink renders the
# usual type of a column inline, see consumers.literals).
RESULT_TYPES: dict[str, type] = {
    "text": str,
    "string": str,
    "json": str,
    "integer": int,
    "bigint": int,
    "boolean": bool,
    "real": float,
    "decimal": Decimal,
    "timestamp_s": datetime,
    "timestamp_ms": datetime,
    "timestamp_text": datetime,
    "blob": bytes,
}


@cache  # LogicalType is frozen and there are few distinct ones: build each converter once
def converter_for(logical: LogicalType) -> Callable[[Any], Any]:
    """The function turning a non-NULL source value into a value of `logical` type."""
    if logical.kind == "string":
        assert logical.length is not None
        return _string(logical.length)
    if logical.kind == "decimal":
        assert logical.precision is not None and logical.scale is not None
        return _decimal(logical.precision, logical.scale)
    return _SIMPLE[logical.kind]


def convert_value(
    table: TableMapping,
    column: ColumnMapping,
    value: Any,
    key: MappingABC[str, Any] | None = None,
) -> Any:
    """`value` (source representation) as the MySQL parameter for `column`."""
    if value is None:
        if column.nullable:
            return None
        raise ConversionError(
            "NULL in a NOT NULL column", table=table.name, column=column.name, key=key
        )
    try:
        return converter_for(column.type)(value)
    except _Unfit as exc:
        raise ConversionError(
            f"{exc} [{column.type}]", table=table.name, column=column.name, key=key, value=value
        ) from None


def convert_row(
    table: TableMapping,
    row: MappingABC[str, Any],
    key: MappingABC[str, Any] | None = None,
) -> dict[str, Any]:
    """Every mapped column, in mapping order; a missing column is NULL (if allowed)."""
    for name in row:
        if name not in table.columns:
            raise ConversionError(
                "unknown column (not in the mapping; re-run `schema infer` or edit the mapping)",
                table=table.name,
                column=name,
                key=key,
                value=row[name],
            )
    return {
        name: convert_value(table, column, row.get(name), key)
        for name, column in table.columns.items()
    }


def convert_key(table: TableMapping, key: MappingABC[str, Any]) -> dict[str, Any]:
    """Exactly the primary-key columns, converted; a missing or extra column is an error."""
    expected = set(table.primary_key)
    for name in key:
        if name not in expected:
            raise ConversionError(
                "key column is not part of the primary key",
                table=table.name,
                column=name,
                key=key,
                value=key[name],
            )
    for name in table.primary_key:
        if name not in key:
            raise ConversionError(
                "primary-key column missing from the key", table=table.name, column=name, key=key
            )
    return {
        name: convert_value(table, table.columns[name], key[name], key)
        for name in table.primary_key
    }


def version_of(table: TableMapping, converted_row: MappingABC[str, Any]) -> tuple[Any, ...]:
    """The row's version: its version columns' values in order; () when it has none."""
    return tuple(converted_row[name] for name in table.version_columns)
