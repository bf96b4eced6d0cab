"""worker.schema.compiled: the compiled per-table converter agrees with the reference."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import ConversionError
from worker.schema import compiled
from worker.schema.compiled import compile_columns, table_converter
from worker.schema.convert import (
    BIGINT_RANGE,
    INT_RANGE,
    MS_RANGE,
    SECONDS_RANGE,
    convert_key,
    convert_row,
    converter_for,
    version_of,
)
from worker.schema.mapping import ColumnMapping, LogicalType, mapping_from_dict

TABLE = mapping_from_dict(
    {
        "tables": {
            "t": {
                "primary_key": ["id", "n"],
                "version_columns": ["updatedAt", "counter"],
                "columns": {
                    "id": {"type": "string(8)", "nullable": False},
                    "n": {"type": "integer", "nullable": False},
                    "name": {"type": "text"},
                    "flag": {"type": "boolean"},
                    "big": {"type": "bigint"},
                    "doc": {"type": "json"},
                    "price": {"type": "decimal(6,2)"},
                    "score": {"type": "real"},
                    "blob": {"type": "blob"},
                    "createdAt": {"type": "timestamp_s"},
                    "updatedAt": {"type": "timestamp_ms", "nullable": False},
                    "counter": {"type": "bigint"},
                },
            }
        }
    }
).table("t")

# Values of every shape a column may receive, fitting or not: the converters must agree.
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(['{"a":1}', "[1,2]", "{bad", "NaN", "2025-01-02 03:04:05", "12.34", "-7"]),
    st.binary(max_size=4),
)
COLUMN_NAMES = [*TABLE.columns, "unknown"]


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    """("ok", every column as (type, repr)) or ("error", message). Types and reprs, not `==`:
    `==` cannot tell True from 1, 1.0 from 1 or -0.0 from 0.0."""
    try:
        converted = fn(*args)
    except ConversionError as exc:
        return "error", str(exc)
    return "ok", [(name, type(value), repr(value)) for name, value in converted.items()]


@given(st.dictionaries(st.sampled_from(COLUMN_NAMES), VALUES))
def test_compiled_row_equals_the_reference_result_or_error(row: dict[str, Any]) -> None:
    """Same converted row, or the same ConversionError message, for any input row."""
    key = {"id": row.get("id"), "n": row.get("n")}
    compiled = _outcome(table_converter(TABLE).row, row, key)
    assert compiled == _outcome(convert_row, TABLE, row, key)


MS_LOW, MS_HIGH = MS_RANGE
S_LOW, S_HIGH = SECONDS_RANGE
# Per column, values that mostly fit (so the converted path runs), around every bound.
FITTING: dict[str, st.SearchStrategy[Any]] = {
    "id": st.text(st.characters(max_codepoint=127), min_size=7, max_size=9) | st.text(max_size=9),
    "n": st.integers(INT_RANGE[0] - 1, INT_RANGE[1] + 1),
    "name": st.text(),
    "flag": st.sampled_from([0, 1, True, False, 2, None]),
    "big": st.integers(BIGINT_RANGE[0] - 1, BIGINT_RANGE[1] + 1) | st.none(),
    "doc": st.sampled_from(['{"a":1}', "[1,2]", "null", None]),
    "price": st.decimals(-9999, 9999, places=2).map(str) | st.none(),
    "score": st.floats() | st.integers() | st.none(),
    "blob": st.binary(max_size=4) | st.none(),
    "createdAt": st.integers(S_LOW - 1, S_HIGH + 1) | st.floats() | st.none(),
    "updatedAt": st.integers(MS_LOW - 1, MS_HIGH + 1) | st.integers(-(10**6), 10**6),
    "counter": st.integers(-5, 5) | st.none(),
}


@given(st.fixed_dictionaries(FITTING))
def test_compiled_row_of_fitting_values_equals_the_reference(row: dict[str, Any]) -> None:
    """Rows that mostly convert: the same values, of the same types, as the reference."""
    key = {"id": row["id"], "n": row["n"]}
    compiled = _outcome(table_converter(TABLE).row, row, key)
    assert compiled == _outcome(convert_row, TABLE, row, key)


@given(st.dictionaries(st.sampled_from(["id", "n", "name"]), VALUES, min_size=1))
def test_compiled_key_equals_the_reference_result_or_error(key: dict[str, Any]) -> None:
    """Same converted key, or the same error (extra, missing or unfit column)."""
    assert _outcome(table_converter(TABLE).key, key) == _outcome(convert_key, TABLE, key)


def test_a_fitting_row_converts_and_yields_its_version() -> None:
    """The common path: every column converts, the version is (updatedAt, counter)."""
    row = {"id": "a", "n": 1, "updatedAt": 1_760_000_000_123, "counter": "7", "flag": 1}
    converted = table_converter(TABLE).row(row)
    assert converted == convert_row(TABLE, row)
    assert converted["flag"] is True and converted["counter"] == 7
    assert table_converter(TABLE).version(converted) == version_of(TABLE, converted)


def test_the_converter_is_built_once_per_table() -> None:
    """A table's compiled converter is cached: the per-column dispatch is resolved once."""
    assert table_converter(TABLE) is table_converter(TABLE)


USUAL_VALUES: dict[str, Any] = {
    "text": "plain ascii",
    "string(8)": "abcdefgh",
    "integer": -(2**31),
    "bigint": 2**63 - 1,
    "real": 0.25,
    "timestamp_ms": 1_760_000_000_123,
    "timestamp_s": 1_760_000_000,
}


def test_usual_values_take_the_inline_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated tests accept the usual value of each kind themselves (the speed-up);
    with every per-column converter made to fail, they still convert, to the same values."""
    kinds = {kind: LogicalType.parse(kind) for kind in USUAL_VALUES}
    columns = [
        ColumnMapping(f"c{i}", logical, nullable=True) for i, logical in enumerate(kinds.values())
    ]
    row = {f"c{i}": value for i, value in enumerate(USUAL_VALUES.values())}
    expected = {f"c{i}": converter_for(k)(row[f"c{i}"]) for i, k in enumerate(kinds.values())}

    def refuse(_logical: LogicalType) -> Any:
        def fail(_value: Any) -> Any:
            raise AssertionError("the usual value reached the per-column converter")

        return fail

    monkeypatch.setattr(compiled, "converter_for", refuse)
    converted = compile_columns(columns)(row)
    assert [(type(v), repr(v)) for v in converted.values()] == [
        (type(v), repr(v)) for v in expected.values()
    ]
    assert compile_columns(columns)({}) == dict.fromkeys(row)  # missing → NULL, inline too
