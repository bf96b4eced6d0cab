"""Test helper: an independent row-by-row comparison of the SQLite source and the target.

Deliberately not d1cdc's own conversion or verify code: each logical type is normalised
here from first principles (Unix s/ms or text → UTC datetime to the millisecond, 0/1 →
bool, JSON text → parsed value), and every row of both sides is compared by primary key.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from worker.schema.mapping import Mapping, TableMapping


def _moment(value: Any, kind: str) -> datetime:
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        moment = parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    else:
        ms = (
            int(value)
            if kind == "timestamp_ms" or abs(value) > 100_000_000_000
            else int(value * 1000)
        )
        moment = datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def normalise(value: Any, kind: str, *, side: str) -> Any:
    if value is None:
        return None
    if kind.startswith("timestamp"):
        if side == "target":
            return value.replace(microsecond=value.microsecond // 1000 * 1000)
        return _moment(value, kind)
    if kind == "boolean":
        return bool(int(value))
    if kind == "json":
        return json.loads(value)
    if kind == "real":
        return round(float(value), 9)
    if kind == "decimal":
        return Decimal(str(value)).normalize()
    if kind == "blob":
        return bytes(value)
    if kind in ("integer", "bigint"):
        return int(value)
    return value


def _rows(table: TableMapping, raw: list[dict[str, Any]], side: str) -> dict[tuple[Any, ...], Any]:
    result = {}
    for row in raw:
        key = tuple(row[c] for c in table.primary_key)
        result[key] = {
            c: normalise(row[c], m.type.kind, side=side) for c, m in table.columns.items()
        }
    return result


def source_rows(path: Path, table: TableMapping) -> dict[tuple[Any, ...], Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        raw = [dict(r) for r in conn.execute(f'SELECT * FROM "{table.name}"')]
    finally:
        conn.close()
    return _rows(table, raw, "source")


def target_rows(engine: Engine, table: TableMapping) -> dict[tuple[Any, ...], Any]:
    with engine.connect() as conn:
        raw = [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM `{table.name}`"))]
    return _rows(table, raw, "target")


def differences(path: Path, engine: Engine, mapping: Mapping, limit: int = 5) -> list[str]:
    """Human-readable differences (empty when the target equals the source)."""
    problems: list[str] = []
    for table in mapping.in_level_order():
        src, dst = source_rows(path, table), target_rows(engine, table)
        for key in src.keys() - dst.keys():
            problems.append(f"{table.name} {key}: missing in target")
        for key in dst.keys() - src.keys():
            problems.append(f"{table.name} {key}: extra in target")
        for key in src.keys() & dst.keys():
            if src[key] != dst[key]:
                diff = {
                    c: (src[key][c], dst[key][c]) for c in src[key] if src[key][c] != dst[key][c]
                }
                problems.append(f"{table.name} {key}: {diff}")
    return problems[:limit] + ([f"… {len(problems) - limit} more"] if len(problems) > limit else [])
