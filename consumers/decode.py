"""Kafka messages → converted `Change`s, or dead letters with the reason. Pure.

A null value is a compaction tombstone (written after every delete event): it carries
nothing to apply and is skipped, not dead-lettered. Everything else must decode as an
envelope v1, name a mapped table, and convert; otherwise it is dead-lettered at once.

Any exception while decoding one message is that message's problem, not the consumer's
(DESIGN.md P4): a JSON value nested 3,000 deep raises RecursionError, a 5,000-digit number
ValueError. Those are dead-lettered too, with the exception's type in the reason and a
warning in the log (an unexpected type there may also mean a bug worth reporting).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from consumers.change import Change, DeadLetter, MessageRef
from consumers.versions import encode_version, ts_version
from worker.envelope import decode_fields, key_matches
from worker.errors import ConversionError, EnvelopeError, EventError, SchemaError
from worker.logs import get_logger
from worker.schema.compiled import TableConverter, table_converter
from worker.schema.mapping import Mapping

_log = get_logger("d1cdc.decode")
BACKFILL = "backfill"  # the origin of the poller's snapshot events


@dataclass
class DecodedBatch:
    changes: list[Change] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    skipped: int = 0  # compaction tombstones


def decode_batch(sources: Iterable[MessageRef], mapping: Mapping) -> DecodedBatch:
    batch = DecodedBatch()
    for source in sources:
        if source.value is None:
            batch.skipped += 1
            continue
        try:
            batch.changes.append(to_change(source, mapping))
        except EventError as exc:
            batch.dead.append(DeadLetter.of(source, exc))
        except Exception as exc:
            undecodable = EnvelopeError(f"{type(exc).__name__} while decoding: {exc}")
            _log.warning(
                "unexpected error decoding a message; dead-lettered",
                topic=source.topic,
                partition=source.partition,
                offset=source.offset,
                error=type(exc).__name__,
            )
            batch.dead.append(DeadLetter.of(source, undecodable))
    return batch


def to_change(source: MessageRef, mapping: Mapping) -> Change:
    """Decode and convert one message; raises an `EventError` subclass with the reason."""
    name, op, wire_key, wire_row, ts_ms, _event_id, origin = decode_fields(source.value)
    table = mapping.table(name)
    if not source.topic.endswith("." + name):
        raise EnvelopeError(f"event for table {name!r} arrived on topic {source.topic!r}")
    if not key_matches(source.key, wire_key):
        # The message key decides the partition, so the per-key order: an event filed under
        # another key may overtake or be overtaken by that key's own events.
        shown = (source.key or b"").decode("utf-8", "backslashreplace")[:200]
        raise EnvelopeError(f"the Kafka message key {shown!r} is not the envelope's key")
    converter = table_converter(table)
    key = converter.key(wire_key)
    row = None
    if op == "upsert" and wire_row is not None:
        row = converter.row(wire_row, key=wire_key)
    version, values = _version(converter, ts_ms, wire_key, wire_row, row)
    return Change(name, op, key, row, version, ts_ms, source, values, origin == BACKFILL)


def _version(
    converter: TableConverter,
    ts_ms: int,
    wire_key: dict[str, Any],
    wire_row: dict[str, Any] | None,
    row: dict[str, Any] | None,
) -> tuple[bytes | None, tuple[Any, ...] | None]:
    table = converter.table
    if not table.version_columns:
        return ts_version(ts_ms), None
    if row is None and wire_row is not None:
        # A delete's version is its before-image's: the version of the row it removes.
        try:
            row = converter.row(wire_row, key=wire_key)
        except ConversionError:
            row = None  # an unconvertible before-image still deletes, as one without image
    if row is None:
        return None, None
    values = converter.version(row)
    try:
        return encode_version(values), values
    except SchemaError as exc:
        raise ConversionError(str(exc), table=table.name, key=wire_key) from None
