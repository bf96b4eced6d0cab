"""Comparable forms of rows, so a source row and a target row compare equal iff they agree.

The source row goes through the mapping's conversion (what the consumer would write); the
target row comes from MySQL. Both are then normalised per logical type:

- JSON is compared parsed (MySQL re-serialises JSON: key order, spaces; MariaDB keeps the
  text as written), rendered canonically;
- datetimes at millisecond precision (DATETIME(3));
- booleans as 0/1 (MySQL has no boolean storage: TINYINT(1));
- decimals by value; text and bytes exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.schema.convert import convert_key, convert_row
from worker.schema.mapping import LogicalType, TableMapping

Row = tuple[Any, ...]
Key = tuple[Any, ...]


def _json(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        try:
            return json.dumps(json.loads(value), sort_keys=True, separators=(",", ":"))
        except json.JSONDecodeError:
            return ("invalid-json", value)
    return value


def _datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000, tzinfo=None)
    return value


def _boolean(value: Any) -> Any:
    if isinstance(value, bool | int):
        return int(value)
    return value


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal | int):
        return Decimal(value).normalize()
    return value


def _identity(value: Any) -> Any:
    return value


def normalizer_for(logical: LogicalType) -> Callable[[Any], Any]:
    if logical.kind == "json":
        return _json
    if logical.is_timestamp:
        return _datetime
    if logical.kind == "boolean":
        return _boolean
    if logical.kind == "decimal":
        return _decimal
    return _identity


class RowComparer:
    """Per-table normalisers, built once: verify calls them for every row of a table."""

    def __init__(self, table: TableMapping) -> None:
        self.table = table
        self.columns = table.column_names
        self._normalizers = [normalizer_for(c.type) for c in table.columns.values()]
        self._key_positions = [self.columns.index(k) for k in table.primary_key]

    def normalize(self, values: Row) -> Row:
        """A target row (values in mapping column order) in comparable form."""
        return tuple(
            None if v is None else n(v) for n, v in zip(self._normalizers, values, strict=True)
        )

    def from_source(self, row: Mapping[str, Any]) -> Row:
        """A source row, converted exactly as the consumer would, in comparable form.

        Raises `ConversionError` when the source row cannot be converted: verify reports
        that row as mismatched with the reason, since the consumer would dead-letter it.
        """
        converted = convert_row(self.table, row, key=self.key_dict_of(row))
        return self.normalize(tuple(converted.values()))

    def key_of(self, normalized: Row) -> Key:
        return tuple(normalized[i] for i in self._key_positions)

    def key_dict_of(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: row.get(k) for k in self.table.primary_key}

    def source_key(self, key: Mapping[str, Any]) -> Key:
        return tuple(convert_key(self.table, key).values())

    def differing_columns(self, source: Row, target: Row) -> list[str]:
        return [c for c, s, t in zip(self.columns, source, target, strict=True) if s != t]
