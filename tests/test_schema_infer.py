"""Specification of worker.schema.infer: proposed types, reasons, and accuracy on the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from worker.demo import generate_demo_db, ground_truth_mapping
from worker.schema.infer import (
    ColumnEvidence,
    infer_mapping,
    propose_type,
    string_length,
    version_columns,
)
from worker.schema.introspect import introspect, open_readonly


def evidence(
    name: str,
    declared: str,
    values: list[Any],
    *,
    default: str | None = None,
    keyed: bool = False,
    longest: int = 0,
) -> ColumnEvidence:
    kinds = {int: "integer", str: "text", float: "real", bytes: "blob"}
    samples = tuple((kinds[type(v)], v) for v in values)
    return ColumnEvidence(name, declared, default, keyed, samples, longest)


def kind(ev: ColumnEvidence) -> str:
    return str(propose_type(ev).type)


def test_timestamp_names_split_seconds_from_milliseconds_by_magnitude() -> None:
    """createdAt with ~1.7e9 is seconds (certain); with ~1.7e12 it is ms (with a reason)."""
    seconds = propose_type(evidence("createdAt", "integer", [1_700_000_000, 1_600_000_000]))
    millis = propose_type(evidence("createdAt", "integer", [1_700_000_000_123]))
    assert (str(seconds.type), seconds.reason) == ("timestamp_s", None)
    assert str(millis.type) == "timestamp_ms" and "ms" in (millis.reason or "")


def test_current_timestamp_default_with_mixed_storage_is_timestamp_with_reason() -> None:
    """An integer column defaulting to CURRENT_TIMESTAMP holds both ints and datetime text."""
    proposal = propose_type(
        evidence(
            "sentAt", "integer", [1_700_000_000, "2024-01-01 10:00:00"], default="CURRENT_TIMESTAMP"
        )
    )
    assert str(proposal.type) == "timestamp_s"
    assert "text" in (proposal.reason or "")


def test_booleans_come_from_names_defaults_or_zero_one_data() -> None:
    """isActive 0/1 is certain; a 0/1 column without a hint is boolean with a reason."""
    assert propose_type(evidence("isActive", "integer", [0, 1, 1])).reason is None
    assert kind(evidence("isActive", "integer", [0, 1])) == "boolean"
    assert kind(evidence("archived", "integer", [1, 0], default="false")) == "boolean"
    unnamed = propose_type(evidence("archived", "integer", [0, 1, 0]))
    assert str(unnamed.type) == "boolean" and unnamed.reason


def test_boolean_name_with_other_values_is_not_forced_to_boolean() -> None:
    """isLevel holding 2 is a number; the reason says the name misled."""
    proposal = propose_type(evidence("isLevel", "integer", [0, 1, 2]))
    assert str(proposal.type) == "bigint" and "0/1" in (proposal.reason or "")


def test_plain_counters_and_huge_integers_are_bigint() -> None:
    """Counts and 64-bit references stay BIGINT."""
    assert kind(evidence("quantity", "integer", [1, 5, 9])) == "bigint"
    assert kind(evidence("externalRef", "integer", [2**60, 2**53 + 1])) == "bigint"


def test_unnamed_integers_in_the_unix_range_are_timestamps_with_reason() -> None:
    """Values all between 2000 and 2100 in seconds look like timestamps, flagged for review."""
    proposal = propose_type(evidence("periodEnd", "integer", [1_700_000_000, 1_710_000_000]))
    assert str(proposal.type) == "timestamp_s" and proposal.reason


def test_text_becomes_json_only_when_every_value_is_an_object_or_array() -> None:
    """One non-JSON value keeps the column text."""
    assert kind(evidence("settings", "text", ['{"a":1}', "[1,2]"])) == "json"
    assert kind(evidence("settings", "text", ['{"a":1}', "plain"])) == "text"
    assert kind(evidence("note", "text", ["42", "true"])) == "text"


def test_iso_date_text_is_timestamp_text() -> None:
    """'YYYY-MM-DD' text columns become DATETIME(3) after review."""
    proposal = propose_type(evidence("startDate", "text", ["2024-05-01", "2025-01-31"]))
    assert str(proposal.type) == "timestamp_text" and proposal.reason


def test_keyed_text_becomes_varchar_with_headroom() -> None:
    """PK/indexed text is string(n), n a step at least 1.5x the longest value."""
    assert kind(evidence("id", "text", ["usr_x"], keyed=True, longest=29)) == "string(64)"
    assert kind(evidence("email", "text", ["a@b"], keyed=True, longest=150)) == "string(255)"
    assert string_length(0) == 64 and string_length(500) == 768


def test_keyed_text_beyond_the_key_limit_is_flagged() -> None:
    """Longer than 768 characters cannot be a utf8mb4 InnoDB key: the reason says so."""
    proposal = propose_type(evidence("token", "text", ["x"], keyed=True, longest=2000))
    assert "key limit" in (proposal.reason or "")


def test_declared_real_and_blob_are_kept() -> None:
    """REAL and BLOB declarations map directly."""
    assert kind(evidence("ratio", "real", [0.5, 1])) == "real"
    assert kind(evidence("avatar", "blob", [b"\x00"])) == "blob"


def test_version_columns_prefer_updated_at_then_counter() -> None:
    """Default version columns: updatedAt (or updated_at) then updateCounter when present."""
    assert version_columns(["id", "updateCounter", "updatedAt"]) == ("updatedAt", "updateCounter")
    assert version_columns(["id", "update_counter"]) == ("update_counter",)
    assert version_columns(["id"]) == ()


@pytest.mark.parametrize(("scale", "seed"), [(1.0, 0), (0.1, 11)])
def test_inference_gets_at_least_95_percent_of_demo_columns_right(
    tmp_path: Path, scale: float, seed: int
) -> None:
    """Measured against the demo's ground truth: a column is right when the proposed logical
    kind equals the true one; keys, version columns, levels and nullability must match too."""
    path = tmp_path / "demo.sqlite"
    generate_demo_db(path, scale=scale, seed=seed)
    with open_readonly(path) as conn:
        proposed = infer_mapping(conn, introspect(conn)).mapping
    truth = ground_truth_mapping()
    right = total = 0
    wrong: list[str] = []
    for table in truth.tables.values():
        guess = proposed.table(table.name)
        assert (guess.primary_key, guess.version_columns, guess.level) == (
            table.primary_key,
            table.version_columns,
            table.level,
        )
        assert set(guess.indexes) == set(table.indexes)
        for column in table.columns.values():
            total += 1
            got = guess.columns[column.name]
            assert got.nullable == column.nullable, f"{table.name}.{column.name}"
            if got.type.kind == column.type.kind:
                right += 1
            else:
                wrong.append(f"{table.name}.{column.name}: {got.type} != {column.type}")
    print(f"inference accuracy (scale {scale}, seed {seed}): {right}/{total} = {right / total:.1%}")
    print("\n".join(wrong))
    assert right / total >= 0.95


@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=30))
def test_boolean_is_never_proposed_for_values_other_than_zero_and_one(values: list[int]) -> None:
    """Whatever the name says, a column holding a 2 or a -1 is never mapped to boolean."""
    assume(not set(values) <= {0, 1})
    for name in ("isActive", "archived", "hasPaid"):
        assert kind(evidence(name, "integer", list(values))) != "boolean"
