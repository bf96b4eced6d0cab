"""`consume --into d1` against a real Kafka broker: reverse topics into the SQLite file, and
each direction reads only its own topics (a forward consumer applying reverse events would
write MySQL's changes back into MySQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from consumers.dlq import read_dead_letters
from consumers.loop import run_until_caught_up
from producers.reverse_events import reverse_delete, reverse_upsert
from tests.consume_helpers import create_topics, prepare_target, rows
from tests.d1_sink_fixtures import MAPPING, create_database, table_rows
from worker.config import Settings
from worker.envelope import ChangeEvent, encode_event, new_event
from worker.kafka import producer_config
from worker.topics import dlq_topic, reverse_topic_for, topic_for

pytestmark = pytest.mark.integration
ITEM = MAPPING.table("item")
BASE = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)


def mysql_item(key: str, name: str | None, seconds: int) -> dict[str, object]:
    """An `item` row as PyMySQL returns it from MySQL."""
    return {"id": key, "name": name, "updatedAt": BASE + timedelta(seconds=seconds)}


def produce_to(
    bootstrap: str, topic_of: Callable[[str], str], events: Iterable[ChangeEvent]
) -> None:
    producer = Producer(producer_config(bootstrap))
    for event in events:
        key, value = encode_event(event)
        producer.produce(topic_of(event.table), key=key, value=value)
    assert producer.flush(30) == 0


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], kafka_bootstrap: str, tmp_path: Path
) -> Settings:
    settings = make_settings(
        source="sqlite", source_path=create_database(tmp_path / "d1.sqlite"), batch_size=100
    )
    prefix = settings.topic_prefix
    create_topics(kafka_bootstrap, prefix, ["item", "reverse.item", "reverse.tag"])
    return settings


def test_reverse_events_reach_the_sqlite_file_and_forward_ones_do_not(settings: Settings) -> None:
    prefix, bootstrap = settings.topic_prefix, settings.kafka_bootstrap
    reverse = [reverse_upsert(ITEM, mysql_item(f"k{i:03d}", f"v1-{i}", i)) for i in range(150)]
    reverse += [
        reverse_upsert(ITEM, mysql_item(f"k{i:03d}", f"v2-{i}", 500 + i)) for i in range(50)
    ]
    reverse += [reverse_delete(ITEM, {"id": f"k{i:03d}"}) for i in range(140, 150)]
    reverse.append(reverse_upsert(ITEM, mysql_item("k000", "older", 0)))  # stale: v2 is newer
    reverse.append(reverse_upsert(ITEM, mysql_item("bad", None, 1)))  # D1: name NOT NULL
    reverse.append(
        new_event("tag", "upsert", {"id": "t"}, {"id": "t", "label": "x"}, origin="reverse")
    )
    produce_to(bootstrap, lambda t: reverse_topic_for(prefix, t), reverse)
    forward = [
        new_event("item", "upsert", {"id": "fwd"}, {"id": "fwd", "name": "app", "updatedAt": 1})
    ]
    produce_to(bootstrap, lambda t: topic_for(prefix, t), forward)

    outcome = run_until_caught_up(settings, MAPPING, timeout_s=90, into="d1")

    assert outcome.caught_up and outcome.messages == len(reverse)
    items = table_rows(settings.source_path, "item")
    expected = {f"k{i:03d}": f"v2-{i}" for i in range(50)}
    expected |= {f"k{i:03d}": f"v1-{i}" for i in range(50, 140)}
    assert {k: r["name"] for k, r in items.items()} == expected  # no "fwd", no "bad"
    assert (
        items["k007"]["updatedAt"]
        == int((BASE - datetime(1970, 1, 1)).total_seconds() * 1000) + 507_000
    )
    assert table_rows(settings.source_path, "tag") == {"t": {"id": "t", "label": "x"}}
    dead = read_dead_letters(bootstrap, dlq_topic(prefix))
    assert [d.key for d in dead] == [b'{"id":"bad"}'] and "NOT NULL" in dead[0].reason


def test_a_forward_consumer_never_applies_reverse_events(settings: Settings) -> None:
    prefix, bootstrap = settings.topic_prefix, settings.kafka_bootstrap
    engine = prepare_target(settings.target_url.get_secret_value(), MAPPING)
    forward = [
        new_event("item", "upsert", {"id": f"f{i}"}, {"id": f"f{i}", "name": "app", "updatedAt": i})
        for i in range(20)
    ]
    produce_to(bootstrap, lambda t: topic_for(prefix, t), forward)
    echo = [reverse_upsert(ITEM, mysql_item(f"r{i}", "from mysql", i)) for i in range(20)]
    produce_to(bootstrap, lambda t: reverse_topic_for(prefix, t), echo)

    # Caught up at all means "caught up" counted only the forward topics: nobody in the
    # forward group ever commits the reverse ones.
    outcome = run_until_caught_up(settings, MAPPING, timeout_s=90)

    assert outcome.caught_up and outcome.messages == len(forward)
    assert sorted(rows(engine, "item")) == sorted(f"f{i}" for i in range(20))
    engine.dispose()
