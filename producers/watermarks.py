"""`WatermarkStore`: each table's scan position, kept in the target as `_d1cdc_watermarks`.

Kept in the target (not a local file) so any poller host can resume, and `d1cdc status`
can show them next to the data. A position is written only after Kafka acknowledged every
event up to it, so after a crash the poller resumes at or before the last row it emitted:
at-least-once, and duplicates are harmless (consumers are idempotent).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.engine import Engine

from producers.keyset import Watermark
from worker.envelope import blob_from_wire, blob_to_wire
from worker.errors import ServiceError

TABLE_NAME = "_d1cdc_watermarks"

_metadata = sa.MetaData()
watermarks_table = sa.Table(
    TABLE_NAME,
    _metadata,
    sa.Column("table_name", sa.String(255, collation="utf8mb4_bin"), primary_key=True),
    sa.Column("position", sa.Text, nullable=False),
    sa.Column("rows_emitted", sa.BigInteger, nullable=False),
    sa.Column("updated_at", DATETIME(fsp=3), nullable=False),
    mysql_charset="utf8mb4",
)


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return blob_to_wire(value)
    if isinstance(value, datetime):  # the reverse poller's versions: MySQL DATETIME(3)
        return {"$datetime": value.isoformat()}
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and "$base64" in value:
        return blob_from_wire(value)
    if isinstance(value, dict) and "$datetime" in value:
        return datetime.fromisoformat(value["$datetime"])
    return value


def encode_watermark(mark: Watermark) -> str:
    body = {
        "phase": mark.phase,
        "pk": None if mark.pk is None else [_to_json(v) for v in mark.pk],
        "version": _to_json(mark.version),
        "snapshot_high": _to_json(mark.snapshot_high),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def decode_watermark(text: str, rows_emitted: int) -> Watermark:
    body = json.loads(text)
    pk = body["pk"]
    return Watermark(
        phase=body["phase"],
        pk=None if pk is None else tuple(_from_json(v) for v in pk),
        version=_from_json(body["version"]),
        snapshot_high=_from_json(body["snapshot_high"]),
        rows_emitted=rows_emitted,
    )


REVERSE_PREFIX = "reverse:"  # the reverse poller's positions (issue 16), in the same table


class WatermarkStore:
    def __init__(self, engine: Engine, *, prefix: str = "") -> None:
        """`prefix` keeps one direction's positions apart from the other's: the forward
        poller's rows are named by table, the reverse poller's `reverse:{table}`."""
        self.engine = engine
        self.prefix = prefix
        try:
            _metadata.create_all(engine, checkfirst=True)
        except sa.exc.OperationalError as exc:
            raise ServiceError(f"cannot create {TABLE_NAME} in the target: {exc.orig}") from None

    def load(self, table: str) -> Watermark | None:
        query = sa.select(watermarks_table.c.position, watermarks_table.c.rows_emitted).where(
            watermarks_table.c.table_name == self.prefix + table
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).first()
        return None if found is None else decode_watermark(found.position, found.rows_emitted)

    def save(self, table: str, mark: Watermark) -> None:
        values = {
            "table_name": self.prefix + table,
            "position": encode_watermark(mark),
            "rows_emitted": mark.rows_emitted,
            "updated_at": datetime.now(UTC).replace(tzinfo=None),
        }
        statement = mysql_insert(watermarks_table).values(**values)
        statement = statement.on_duplicate_key_update(
            position=statement.inserted.position,
            rows_emitted=statement.inserted.rows_emitted,
            updated_at=statement.inserted.updated_at,
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def clear(self) -> int:
        """Delete every position of this store's direction (`prefix`); returns how many.
        Only a prefixed store may: the forward positions are never cleared this way."""
        if not self.prefix:
            raise ValueError("only a prefixed (reverse) store can be cleared")
        name = watermarks_table.c.table_name
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.delete(watermarks_table).where(name.startswith(self.prefix, autoescape=True))
            )
        return int(result.rowcount)

    def all(self) -> dict[str, Watermark]:
        query = sa.select(watermarks_table)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {
            r.table_name.removeprefix(self.prefix): decode_watermark(r.position, r.rows_emitted)
            for r in rows
            if r.table_name.startswith(self.prefix)
            and (self.prefix or not r.table_name.startswith(REVERSE_PREFIX))
        }
