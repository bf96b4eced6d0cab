"""Batch decoding: tombstones skipped, poison dead-lettered with a reason, versions derived."""

from __future__ import annotations

from datetime import datetime

from consumers.change import MessageRef
from consumers.decode import decode_batch
from consumers.versions import encode_version, ts_version
from tests.consume_helpers import BASE_MS, MAPPING, tag_event, user_event
from worker.envelope import ChangeEvent, encode_event, new_event


def _source(event: ChangeEvent, topic: str | None = None, offset: int = 0) -> MessageRef:
    key, value = encode_event(event)
    return MessageRef(topic or f"p.{event.table}", 0, offset, key, value)


def test_compaction_tombstones_are_skipped_not_dead_lettered() -> None:
    """A null value is Kafka's delete marker for compaction: nothing to apply, no DLQ."""
    batch = decode_batch([MessageRef("p.user", 0, 0, b'{"id":"a"}', None)], MAPPING)
    assert (batch.changes, batch.dead, batch.skipped) == ([], [], 1)


def test_upsert_version_comes_from_the_version_columns() -> None:
    """Versioned tables: the converted version columns, encoded."""
    [change] = decode_batch([_source(user_event("a", 5))], MAPPING).changes
    moment = datetime(2025, 10, 9, 8, 53, 20, 5000)
    assert change.version_values == (moment,)
    assert change.version == encode_version((moment,))


def test_delete_version_comes_from_its_before_image() -> None:
    """A delete with a before-image carries the deleted row's version."""
    [change] = decode_batch([_source(user_event("a", 5, op="delete"))], MAPPING).changes
    assert change.op == "delete" and change.row is None
    assert change.version == decode_batch([_source(user_event("a", 5))], MAPPING).changes[0].version


def test_delete_without_before_image_has_no_version() -> None:
    """Without a before-image the delete's row version is unknown (None)."""
    event = new_event("user", "delete", {"id": "a"}, None, ts_ms=BASE_MS)
    [change] = decode_batch([_source(event)], MAPPING).changes
    assert change.version is None and change.ts_ms == BASE_MS


def test_unversioned_table_version_is_ts_ms() -> None:
    """Tables without version columns fall back to the event's ts_ms."""
    [change] = decode_batch([_source(tag_event("t", 7))], MAPPING).changes
    assert change.version == ts_version(BASE_MS + 7)


def test_each_poison_event_is_dead_lettered_with_its_reason_and_origin() -> None:
    """Bad JSON, unknown table, unconvertible value, wrong topic → one dead letter each."""
    sources = [
        MessageRef("p.user", 1, 10, b"k", b"{oops"),
        _source(new_event("ghost", "upsert", {"id": "x"}, {"id": "x"}), topic="p.user", offset=11),
        _source(user_event("b", 1, active=2), offset=12),
        _source(tag_event("t", 1), topic="p.user", offset=13),
        _source(user_event("ok", 1), offset=14),
    ]
    batch = decode_batch(sources, MAPPING)
    assert [c.key for c in batch.changes] == [{"id": "ok"}]
    reasons = [d.reason.split(":")[0] for d in batch.dead]
    assert reasons == ["EnvelopeError", "UnknownTableError", "ConversionError", "EnvelopeError"]
    assert [d.source.offset for d in batch.dead] == [10, 11, 12, 13]
    assert "user.active" in batch.dead[2].reason
