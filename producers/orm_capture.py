"""SQLAlchemy integration: emit an ORM session's committed inserts, updates and deletes.

The Python counterpart of wrapping Drizzle's writes. `after_flush` collects each flushed
change as it is stored in SQLite; `after_commit` emits them through the `ChangeEmitter`;
`after_rollback` discards them — so only committed writes become events, in flush order.

Rows travel in their SQLite storage representation (the event contract): each value is
passed through its column type's bind processor, so a `Boolean` becomes 0/1 and a
`DateTime` the text SQLAlchemy stores, exactly what the backfill poller would read.

Not captured: Core/bulk statements (`session.execute(update(...))`), which bypass the unit
of work — the backfill poller picks those rows up by watermark. A process crash between
commit and Kafka's acknowledgement loses the in-memory events the same way; again the
poller is the safety net, and `emitter.close()` at shutdown avoids it in normal operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, sessionmaker

from producers.emitter import ChangeEmitter

_PENDING = "d1cdc_pending_changes"


@dataclass(frozen=True)
class CapturedChange:
    op: Literal["upsert", "delete"]
    table: str
    key: dict[str, Any]
    row: dict[str, Any]


def _stored_row(obj: Any, dialect: Dialect) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(table name, key, row) of a mapped object, values as the dialect stores them."""
    mapper = sa.inspect(obj).mapper
    table = mapper.local_table
    row: dict[str, Any] = {}
    for column in table.columns:
        value = getattr(obj, mapper.get_property_by_column(column).key)
        processor = column.type.dialect_impl(dialect).bind_processor(dialect)
        row[column.name] = (
            processor(value) if processor is not None and value is not None else value
        )
    key = {c.name: row[c.name] for c in mapper.primary_key}
    return str(table.name), key, row


def _after_flush(session: Session, _context: Any) -> None:
    dialect = session.get_bind().dialect
    pending: list[CapturedChange] = session.info.setdefault(_PENDING, [])
    for obj in session.new:
        pending.append(CapturedChange("upsert", *_stored_row(obj, dialect)))
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=False):
            pending.append(CapturedChange("upsert", *_stored_row(obj, dialect)))
    for obj in session.deleted:
        pending.append(CapturedChange("delete", *_stored_row(obj, dialect)))


def capture_changes(
    target: sessionmaker[Session] | type[Session] | Session, emitter: ChangeEmitter
) -> None:
    """Emit every committed ORM change made through `target` (a sessionmaker, Session
    class or session) via `emitter`."""

    def after_commit(session: Session) -> None:
        changes: list[CapturedChange] = session.info.pop(_PENDING, [])
        for change in changes:
            if change.op == "upsert":
                emitter.upsert(change.table, change.row, key=change.key)
            else:
                emitter.delete(change.table, change.key, before=change.row)
        emitter.poll(0)

    def after_rollback(session: Session) -> None:
        session.info.pop(_PENDING, None)

    event.listen(target, "after_flush", _after_flush)
    event.listen(target, "after_commit", after_commit)
    event.listen(target, "after_rollback", after_rollback)
