"""Pure parts of verify: normalisation and the chunk merge."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from worker.schema.mapping import mapping_from_dict
from worker.verify.diff import chunk_checksum, diff_chunks
from worker.verify.normalize import RowComparer

MAPPING = mapping_from_dict(
    {
        "tables": {
            "doc": {
                "primary_key": ["id"],
                "version_columns": ["updatedAt"],
                "columns": {
                    "id": {"type": "string(32)", "nullable": False},
                    "body": {"type": "json"},
                    "active": {"type": "boolean"},
                    "price": {"type": "decimal(10,2)"},
                    "updatedAt": {"type": "timestamp_s", "nullable": False},
                },
            }
        }
    }
)
DOC = MAPPING.table("doc")


def test_json_key_order_and_spacing_do_not_matter() -> None:
    """MySQL re-serialises JSON; a re-ordered target document still compares equal."""
    comparer = RowComparer(DOC)
    source = comparer.from_source(
        {"id": "a", "body": '{"b":1,"a":[1,2]}', "active": 1, "price": "1.50", "updatedAt": 10}
    )
    target = comparer.normalize(
        ("a", '{"a": [1, 2], "b": 1}', 1, Decimal("1.50"), datetime(1970, 1, 1, 0, 0, 10))
    )
    assert source == target


def test_one_second_off_timestamp_is_a_difference_in_that_column() -> None:
    """A datetime off by a second differs, and only that column is named."""
    comparer = RowComparer(DOC)
    source = comparer.from_source(
        {"id": "a", "body": "{}", "active": 0, "price": 2, "updatedAt": 10}
    )
    target = comparer.normalize(("a", "{}", 0, Decimal("2.00"), datetime(1970, 1, 1, 0, 0, 11)))
    assert comparer.differing_columns(source, target) == ["updatedAt"]


def test_equal_chunks_short_circuit_on_checksum() -> None:
    """Equal chunks are all matching; the checksum is order sensitive."""
    rows = [(("a",), ("a", 1)), (("b",), ("b", 2))]
    result = diff_chunks(rows, list(rows), lambda s, t: ["x"])
    assert result.matching == 2
    assert chunk_checksum(rows) != chunk_checksum(rows[::-1])


@given(
    st.dictionaries(st.text(max_size=4), st.integers(0, 3), max_size=30),
    st.dictionaries(st.text(max_size=4), st.integers(0, 3), max_size=30),
)
def test_merge_classifies_every_key_exactly_once(src: dict[str, int], tgt: dict[str, int]) -> None:
    """missing = only in source, extra = only in target, mismatched = both but different."""
    source = sorted(((k,), (k, v)) for k, v in src.items())
    target = sorted(((k,), (k, v)) for k, v in tgt.items())
    result = diff_chunks(source, target, lambda s, t: ["v"] if s != t else [])
    assert {k[0] for k in result.missing} == src.keys() - tgt.keys()
    assert {k[0] for k in result.extra} == tgt.keys() - src.keys()
    both = src.keys() & tgt.keys()
    assert {k[0] for k, _ in result.mismatched} == {k for k in both if src[k] != tgt[k]}
    assert result.matching == sum(1 for k in both if src[k] == tgt[k])
