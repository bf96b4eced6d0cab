"""Specification of worker.schema.writer: the mapping file a person reviews."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from worker.demo import ground_truth_mapping
from worker.errors import ConfigError
from worker.schema.mapping import ColumnMapping, LogicalType, TableMapping, load_mapping
from worker.schema.mapping import Mapping as SchemaMapping
from worker.schema.writer import mapping_to_toml, write_mapping


def test_written_mapping_loads_back_identical(tmp_path: Path) -> None:
    """write → load is the identity on the demo's full mapping (types, keys, indexes, FKs)."""
    path = tmp_path / "mapping.toml"
    write_mapping(ground_truth_mapping(), path)
    assert load_mapping(path) == ground_truth_mapping()


def test_uncertain_columns_carry_reason_and_review_marker() -> None:
    """A reason is written as a key and flagged with a REVIEW comment; notes head the file."""
    table = TableMapping(
        "limit",
        {
            "id": ColumnMapping("id", LogicalType.parse("string(64)"), nullable=False),
            "seenAt": ColumnMapping(
                "seenAt", LogicalType.parse("timestamp_ms"), reason="values up to 1.7e12"
            ),
        },
        ("id",),
    )
    text = mapping_to_toml(SchemaMapping({"limit": table}), notes=["team: self-reference"])
    assert 'reason = "values up to 1.7e12" # REVIEW' in text
    assert "# NOTE: team: self-reference" in text
    parsed = tomllib.loads(text)
    assert parsed["tables"]["limit"]["columns"]["id"] == {"type": "string(64)", "nullable": False}


def test_existing_mapping_is_not_overwritten_without_force(tmp_path: Path) -> None:
    """A reviewed mapping is precious: overwriting it takes --force."""
    path = tmp_path / "mapping.toml"
    path.write_text("# reviewed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="--force"):
        write_mapping(ground_truth_mapping(), path)
    assert path.read_text(encoding="utf-8") == "# reviewed\n"
    write_mapping(ground_truth_mapping(), path, force=True)
    assert load_mapping(path) == ground_truth_mapping()
