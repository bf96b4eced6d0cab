"""An edge-case mapping: reserved-word and odd identifiers, composite keys, every type.

Shared by the schema-lint tests and the Vitess parser test, so both see the same
statements the code generates for a schema that is hard to quote and to type.
"""

from __future__ import annotations

from typing import Any

from worker.schema.mapping import Mapping, mapping_from_dict

EDGE_DICT: dict[str, Any] = {
    "tables": {
        "order": {
            "primary_key": ["key", "select"],
            "version_columns": ["updatedAt", "updateCounter"],
            "columns": {
                "key": {"type": "string(64)", "nullable": False},
                "select": {"type": "bigint", "nullable": False},
                "we`ird col": {"type": "text"},
                "index": {"type": "integer"},
                "isActive": {"type": "boolean", "nullable": False},
                "doc": {"type": "json"},
                "price": {"type": "decimal(20,6)"},
                "ratio": {"type": "real"},
                "avatar": {"type": "blob"},
                "bornAt": {"type": "timestamp_text"},
                "seenAtMs": {"type": "timestamp_ms"},
                "updatedAt": {"type": "timestamp_s", "nullable": False},
                "updateCounter": {"type": "integer", "nullable": False},
            },
            "indexes": [
                {"name": "order_index_unique", "columns": ["index", "isActive"], "unique": True},
                {"name": "group", "columns": ["bornAt"]},
            ],
        },
        "limit": {
            "primary_key": ["id"],
            "version_columns": ["updatedAt"],
            "level": 1,
            "columns": {
                "id": {"type": "string(32)", "nullable": False},
                "orderKey": {"type": "string(64)"},
                "orderSelect": {"type": "bigint"},
                "updatedAt": {"type": "timestamp_ms", "nullable": False},
            },
            "foreign_keys": [
                {
                    "columns": ["orderKey", "orderSelect"],
                    "ref_table": "order",
                    "ref_columns": ["key", "select"],
                }
            ],
        },
    }
}


def edge_mapping() -> Mapping:
    return mapping_from_dict(EDGE_DICT)
