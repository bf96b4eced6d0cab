"""Kafka messages → converted `Change`s, or dead letters with the reason. Pure.

A null value is a compaction tombstone (written after every delete event): it carries
nothing to apply and is skipped, not dead-lettered. Everything else must decode as an
envelope v1, name a mapped table, and convert; otherwise it is dead-lettered at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from consumers.change import Change, DeadLetter, Source
from consumers.versions import encode_version, ts_version
from worker.envelope import ChangeEvent, decode_event
from worker.errors import ConversionError, EnvelopeError, EventError, SchemaError
from worker.schema.compiled import TableConverter, table_converter
from worker.schema.mapping import Mapping


@dataclass
class DecodedBatch:
    changes: list[Change] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    skipped: int = 0  # compaction tombstones


def decode_batch(sources: Iterable[Source], mapping: Mapping) -> DecodedBatch:
    batch = DecodedBatch()
    for source in sources:
        if source.value is None:
            batch.skipped += 1
            continue
        try:
            batch.changes.append(to_change(source, mapping))
        except EventError as exc:
            batch.dead.append(DeadLetter(source, f"{type(exc).__name__}: {exc.reason}"))
    return batch


def to_change(source: Source, mapping: Mapping) -> Change:
    """Decode and convert one message; raises an `EventError` subclass with the reason."""
    event = decode_event(source.value)
    table = mapping.table(event.table)
    expected_topic_suffix = "." + event.table
    if not source.topic.endswith(expected_topic_suffix):
        raise EnvelopeError(f"event for table {event.table!r} arrived on topic {source.topic!r}")
    converter = table_converter(table)
    key = converter.key(event.key)
    row = None
    if event.op == "upsert" and event.row is not None:
        row = converter.row(event.row, key=event.key)
    version, values = _version(converter, event, row)
    return Change(event.table, event.op, key, row, version, event.ts_ms, source, values)


def _version(
    converter: TableConverter, event: ChangeEvent, row: dict[str, Any] | None
) -> tuple[bytes | None, tuple[Any, ...] | None]:
    table = converter.table
    if not table.version_columns:
        return ts_version(event.ts_ms), None
    if row is None and event.row is not None:
        # A delete's version is its before-image's: the version of the row it removes.
        try:
            row = converter.row(event.row, key=event.key)
        except ConversionError:
            row = None  # an unconvertible before-image still deletes, as one without image
    if row is None:
        return None, None
    values = converter.version(row)
    try:
        return encode_version(values), values
    except SchemaError as exc:
        raise ConversionError(str(exc), table=table.name, key=event.key) from None
