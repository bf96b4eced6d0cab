"""Per-table converters compiled once: `convert_row`/`convert_key` for the consume hot path.

`worker.schema.convert` is the reference: its `convert_row` looks up every column's
converter for every value, which was a third of the decode time per event (measured with
ops/bench/bench_apply.py). A `TableConverter` resolves those converters once per table and
then runs a flat loop. On any failure it hands the same input to the reference function,
which raises the exact `ConversionError` it always raised: the two cannot disagree on
errors, and they agree on results by property test (tests/test_compiled_convert.py).

Mappings are immutable once loaded (frozen dataclasses), so a table's compiled converter
stays valid for the table object's lifetime.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from operator import itemgetter
from typing import Any

from worker.schema.convert import convert_key, convert_row, converter_for
from worker.schema.mapping import TableMapping

_CACHE_LIMIT = 256  # distinct table objects; a long-lived worker has a handful


class _Rejected(Exception):
    """Some column did not convert: let the reference function say which and why."""


class TableConverter:
    def __init__(self, table: TableMapping) -> None:
        self.table = table
        self._names = frozenset(table.columns)
        self._columns = tuple(
            (name, converter_for(column.type), column.nullable)
            for name, column in table.columns.items()
        )
        self._key_names = frozenset(table.primary_key)
        self._key_columns = tuple(
            (name, converter_for(table.columns[name].type), table.columns[name].nullable)
            for name in table.primary_key
        )
        versions = table.version_columns
        self._version: Callable[[MappingABC[str, Any]], tuple[Any, ...]]
        if not versions:
            self._version = lambda _row: ()
        elif len(versions) == 1:
            getter = itemgetter(versions[0])
            self._version = lambda row: (getter(row),)
        else:
            self._version = itemgetter(*versions)

    def row(
        self, row: MappingABC[str, Any], key: MappingABC[str, Any] | None = None
    ) -> dict[str, Any]:
        """Same result and errors as `convert_row(self.table, row, key)`."""
        if not self._names.issuperset(row):
            return convert_row(self.table, row, key)  # raises: an unknown column
        try:
            return _convert(self._columns, row)
        except Exception:
            return convert_row(self.table, row, key)  # raises the reference's error

    def key(self, key: MappingABC[str, Any]) -> dict[str, Any]:
        """Same result and errors as `convert_key(self.table, key)`."""
        if len(key) != len(self._key_names) or not self._key_names.issuperset(key):
            return convert_key(self.table, key)  # raises: an extra or missing column
        try:
            return _convert(self._key_columns, key)
        except Exception:
            return convert_key(self.table, key)

    def version(self, converted_row: MappingABC[str, Any]) -> tuple[Any, ...]:
        """Same as `version_of(self.table, converted_row)`."""
        return self._version(converted_row)


def _convert(
    columns: tuple[tuple[str, Callable[[Any], Any], bool], ...], values: MappingABC[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, convert, nullable in columns:
        value = values.get(name)
        if value is not None:
            out[name] = convert(value)
        elif nullable:
            out[name] = None
        else:
            raise _Rejected
    return out


_cache: dict[int, TableConverter] = {}


def table_converter(table: TableMapping) -> TableConverter:
    """The compiled converter of `table`, built on first use.

    Keyed by identity (a `TableMapping` holds a dict, so it is not hashable); the entry keeps
    its table alive, so an id cannot be reused while it is cached.
    """
    found = _cache.get(id(table))
    if found is None or found.table is not table:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        found = _cache[id(table)] = TableConverter(table)
    return found
