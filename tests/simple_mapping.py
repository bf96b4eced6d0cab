"""Test helper: the one-table versioned mapping several tests build on."""

from __future__ import annotations

from typing import Any

from worker.schema.mapping import Mapping, mapping_from_dict


def versioned_table(table: str = "item", *, id_length: int = 20, **columns: str) -> Mapping:
    """`table` keyed by `id` (string), versioned by `updatedAt` (Unix ms), plus `columns`
    given as name=logical type (nullable)."""
    spec: dict[str, Any] = {
        "id": {"type": f"string({id_length})", "nullable": False},
        **{name: {"type": kind} for name, kind in columns.items()},
        "updatedAt": {"type": "timestamp_ms", "nullable": False},
    }
    return mapping_from_dict(
        {
            "tables": {
                table: {"primary_key": ["id"], "version_columns": ["updatedAt"], "columns": spec}
            }
        }
    )
