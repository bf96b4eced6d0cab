"""MySQL value → source (SQLite / wire) value, per logical type: the inverse of `convert`.

The reverse pipeline (PlanetScale → Kafka → D1) reads rows as the MySQL driver returns them
(PyMySQL: `datetime` for DATETIME(3), `int` for BIGINT and BOOLEAN, `str` for JSON,
`Decimal`, `bytes`, `float`) and ships them in the representation the app itself writes into
D1, so that `convert_value(unconvert_value(v)) == v` for every value MySQL can hold and
`unconvert_value(convert_value(x)) == x` for every source value in the column's canonical form
(tests/test_unconvert_properties.py). Pure; a value of the wrong type raises
`ConversionError` naming table, column and key, never the value.

Decisions:

- `timestamp_s` → Unix seconds (int), floored: DATETIME(3) may hold milliseconds that a
  seconds column cannot; flooring is what `convert` does the other way.
- `timestamp_ms` → Unix milliseconds (int). `timestamp_text` → `YYYY-MM-DD HH:MM:SS`, with
  `.fff` only when the milliseconds are not zero (what SQLite's datetime() writes).
- `boolean` → 0/1 (Drizzle's mode:"boolean" storage).
- `json` → compact `JSON.stringify`-style text (no spaces). MySQL re-orders object keys on
  storage, so the original key order cannot be recovered; JSON is compared parsed anyway.
- integers stay Python ints; `worker.envelope.to_wire` sends those above 2^53 as strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from worker.errors import ConversionError
from worker.schema.mapping import ColumnMapping, LogicalType, TableMapping

EPOCH = datetime(1970, 1, 1)


class _Unfit(Exception):
    """Raised by an inverse converter; `unconvert_value` adds table, column and key."""


def _naive(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise _Unfit("expected a DATETIME value")
    moment: datetime = value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _ms_of(moment: Any) -> int:
    delta = _naive(moment) - EPOCH
    # Integer arithmetic only: total_seconds() is a float and loses ms far from 1970.
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _seconds(value: Any) -> int:
    return _ms_of(value) // 1000


def _text_timestamp(value: Any) -> str:
    moment = _naive(value)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    # strftime's %Y does not zero-pad years below 1000 on every platform; MySQL's floor is 1000.
    if moment.microsecond // 1000:
        text += f".{moment.microsecond // 1000:03d}"
    return text


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _Unfit("expected an integer")
    number = int(value)
    if number != value:
        raise _Unfit("expected an integer, got a fraction")
    return number


def _boolean(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    raise _Unfit("a boolean column holds only 0 or 1")


def _text(value: Any) -> str:
    if isinstance(value, bytes):  # some drivers return JSON / binary-collated text as bytes
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise _Unfit("text that is not valid UTF-8") from None
    if not isinstance(value, str):
        raise _Unfit("expected text")
    return value


def _json(value: Any) -> str:
    text = _text(value)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        raise _Unfit("text that is not valid JSON") from None
    # JSON.stringify's shape: no spaces, non-ASCII as is.
    return json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)


def _real(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _Unfit("expected a number")
    number = float(value)
    if not math.isfinite(number):
        raise _Unfit("inf/nan is not a real")
    return number


def _decimal(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _Unfit("expected a decimal")
    # Text keeps every digit (a REAL would round); `convert` accepts numeric text back.
    return str(value)


def _blob(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise _Unfit("expected bytes")


_INVERSE: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "string": _text,
    "integer": _integer,
    "bigint": _integer,
    "boolean": _boolean,
    "timestamp_s": _seconds,
    "timestamp_ms": _ms_of,
    "timestamp_text": _text_timestamp,
    "json": _json,
    "real": _real,
    "decimal": _decimal,
    "blob": _blob,
}


@cache
def unconverter_for(logical: LogicalType) -> Callable[[Any], Any]:
    """The function turning a non-NULL MySQL value of `logical` type into its source form."""
    return _INVERSE[logical.kind]


def unconvert_value(
    table: TableMapping,
    column: ColumnMapping,
    value: Any,
    key: MappingABC[str, Any] | None = None,
) -> Any:
    """`value` (as the MySQL driver returns it) in the source representation of `column`."""
    if value is None:
        return None
    try:
        return unconverter_for(column.type)(value)
    except _Unfit as exc:
        raise ConversionError(
            f"{exc} [{column.type}, reverse]",
            table=table.name,
            column=column.name,
            key=key,
            value=value,
        ) from None


def unconvert_row(table: TableMapping, row: MappingABC[str, Any]) -> dict[str, Any]:
    """Every mapped column of a MySQL row, in source representation; others are ignored."""
    key = {name: row.get(name) for name in table.primary_key}
    return {
        name: unconvert_value(table, column, row.get(name), key)
        for name, column in table.columns.items()
    }
