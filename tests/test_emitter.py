"""ChangeEmitter against a real broker: keys, envelopes, tombstones, and the spool."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from topic_reader import read_topic

from producers.emitter import ChangeEmitter
from worker.config import Settings
from worker.envelope import decode_event
from worker.errors import SchemaError, ServiceError
from worker.kafka import admin_client
from worker.schema.mapping import mapping_from_dict
from worker.topics import ensure_topics, topic_for

pytestmark = pytest.mark.integration

MAPPING = mapping_from_dict(
    {
        "tables": {
            "user": {
                "primary_key": ["id"],
                "columns": {"id": {"type": "string(50)"}, "name": {"type": "text"}},
            }
        }
    }
)
UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """This test's settings, with its table topics created (the broker does not auto-create)."""
    built = make_settings(topic_partitions=2)
    admin = admin_client(built.kafka_bootstrap)
    ensure_topics(admin, built.topic_prefix, ["user"], partitions=2, replication=1)
    return built


def test_upsert_is_keyed_by_primary_key_and_enveloped(
    settings: Settings,
) -> None:
    """The message key is the canonical PK JSON; the value decodes as a v1 upsert."""
    emitter = ChangeEmitter.from_settings(settings, MAPPING)
    emitter.upsert("user", {"id": "u1", "name": "Ann", "blob": b"\x00\x01"})
    emitter.flush()
    [(key, value)] = read_topic(settings.kafka_bootstrap, topic_for(settings.topic_prefix, "user"))
    assert key == b'{"id":"u1"}'
    event = decode_event(value)
    assert (event.op, event.table, event.origin) == ("upsert", "user", "app")
    assert event.row == {"id": "u1", "name": "Ann", "blob": b"\x00\x01"}
    assert emitter.delivered == 1 and emitter.failed == 0


def test_delete_is_followed_by_a_tombstone_with_the_same_key(
    settings: Settings,
) -> None:
    """A delete event (with its before-image) and then a null-valued tombstone, same key."""
    emitter = ChangeEmitter.from_settings(settings, MAPPING)
    emitter.delete("user", {"id": "u1"}, before={"id": "u1", "name": "Ann"})
    emitter.flush()
    messages = read_topic(settings.kafka_bootstrap, topic_for(settings.topic_prefix, "user"))
    assert [k for k, _ in messages] == [b'{"id":"u1"}', b'{"id":"u1"}']
    assert decode_event(messages[0][1]).op == "delete"
    assert decode_event(messages[0][1]).row == {"id": "u1", "name": "Ann"}
    assert messages[1][1] is None


def test_row_without_its_primary_key_is_refused(settings: Settings) -> None:
    """A row lacking a PK column raises SchemaError naming the table, instead of a bad key."""
    emitter = ChangeEmitter.from_settings(settings, MAPPING)
    with pytest.raises(SchemaError, match=r"'user'.*primary-key"):
        emitter.upsert("user", {"name": "no id"})


def test_events_spooled_while_kafka_is_unreachable_are_delivered_in_order_after_restart(
    settings: Settings, tmp_path: Path
) -> None:
    """Broker down → events land in the spool; a new emitter with the broker up replays all,
    in the original order, before its own new events."""
    spool_dir = tmp_path / "spool"
    down = ChangeEmitter(
        UNREACHABLE,
        settings.topic_prefix,
        mapping=MAPPING,
        spool_dir=spool_dir,
        **{"message.timeout.ms": 1500},
    )
    for i in range(20):
        down.upsert("user", {"id": "same", "name": f"v{i}"})
    down.delete("user", {"id": "gone"})
    down.flush(timeout=10)  # everything failed delivery → spooled, nothing lost
    assert down.spooled == 22 and down.spooling

    up = ChangeEmitter.from_settings(settings, MAPPING, spool_dir=spool_dir)
    up.upsert("user", {"id": "same", "name": "after"})
    up.flush()
    assert not up.spooling
    messages = read_topic(settings.kafka_bootstrap, topic_for(settings.topic_prefix, "user"))
    same = [json.loads(v)["row"]["name"] for k, v in messages if k == b'{"id":"same"}' and v]
    assert same == [f"v{i}" for i in range(20)] + ["after"]
    gone = [v for k, v in messages if k == b'{"id":"gone"}']
    assert len(gone) == 2 and gone[1] is None


def test_without_a_spool_an_undeliverable_event_raises_on_flush(
    settings: Settings,
) -> None:
    """The backfill's emitter has no spool: a failed delivery is an error, never a silent drop."""
    emitter = ChangeEmitter(
        UNREACHABLE, settings.topic_prefix, mapping=MAPPING, **{"message.timeout.ms": 1000}
    )
    emitter.upsert("user", {"id": "u1", "name": "Ann"})
    with pytest.raises(ServiceError, match="did not accept 1 event"):
        emitter.flush(timeout=10)
