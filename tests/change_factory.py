"""Test helper: hand-made mappings and `Change`s without Kafka or conversion."""

from __future__ import annotations

from itertools import count
from typing import Any

from consumers.change import Change, MessageRef
from consumers.versions import encode_version, ts_version
from worker.envelope import Op
from worker.schema.mapping import Mapping, mapping_from_dict

_offsets = count()

MAPPING: Mapping = mapping_from_dict(
    {
        "tables": {
            "item": {
                "primary_key": ["id"],
                "version_columns": ["updatedAt", "counter"],
                "columns": {
                    "id": {"type": "string(20)", "nullable": False},
                    "name": {"type": "text"},
                    "updatedAt": {"type": "bigint", "nullable": False},
                    "counter": {"type": "bigint", "nullable": False},
                },
            },
            "tag": {
                "primary_key": ["id"],
                "columns": {
                    "id": {"type": "string(20)", "nullable": False},
                    "label": {"type": "text"},
                },
            },
        }
    }
)


def item_change(
    key: str,
    op: Op,
    version: tuple[int, int] | None,
    *,
    name: str = "x",
    ts_ms: int = 0,
) -> Change:
    """A change of the versioned `item` table; a delete with `version=None` has no image."""
    row = None
    if op == "upsert":
        assert version is not None
        row = {"id": key, "name": name, "updatedAt": version[0], "counter": version[1]}
    encoded = None if version is None else encode_version(version)
    return Change("item", op, {"id": key}, row, encoded, ts_ms, _source("item"), version)


def tag_change(key: str, op: Op, ts_ms: int, *, label: str = "x") -> Change:
    """A change of the unversioned `tag` table (ts_ms is its version)."""
    row: dict[str, Any] | None = {"id": key, "label": label} if op == "upsert" else None
    return Change("tag", op, {"id": key}, row, ts_version(ts_ms), ts_ms, _source("tag"))


def _source(table: str) -> MessageRef:
    return MessageRef(f"test.{table}", 0, next(_offsets), b"k", b"v")
