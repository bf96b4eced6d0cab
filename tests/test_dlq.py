"""Dead letters carry their origin and reason in headers, and read back as they were written."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from consumers.change import DeadLetter, MessageRef
from consumers.dlq import (
    DeadLetterProducer,
    acknowledge_dead_letters,
    dead_letter_headers,
    read_dead_letters,
)
from worker.config import Settings
from worker.kafka import admin_client
from worker.topics import dlq_topic, ensure_topics


def test_headers_name_reason_and_origin() -> None:
    """Reason, original topic/partition/offset and timestamp travel as headers."""
    letter = DeadLetter(MessageRef("p.user", 2, 41, b"k", b"v", 1700), "ConversionError: x")
    assert dict(dead_letter_headers(letter)) == {
        "d1cdc.reason": b"ConversionError: x",
        "d1cdc.topic": b"p.user",
        "d1cdc.partition": b"2",
        "d1cdc.offset": b"41",
        "d1cdc.timestamp": b"1700",
    }


@pytest.mark.integration
def test_dead_letters_round_trip_through_the_topic(make_settings: Callable[..., Settings]) -> None:
    """What the producer wrote (and flushed) is what `read_dead_letters` lists, byte for byte."""
    settings = make_settings()
    ensure_topics(admin_client(settings.kafka_bootstrap), settings.topic_prefix, [], 1, 1)
    topic = dlq_topic(settings.topic_prefix)
    producer = DeadLetterProducer(settings.kafka_bootstrap, topic)
    letters = [
        DeadLetter(MessageRef("p.user", 0, 7, b'{"id":"a"}', b"\xffraw", 5), "EnvelopeError: bad"),
        DeadLetter(MessageRef("p.tag", 1, 9, None, b"{}", 6), "UnknownTableError: t"),
    ]
    producer.send(letters)
    producer.flush()
    records = read_dead_letters(settings.kafka_bootstrap, topic)
    assert [(r.topic, r.partition, r.offset, r.key, r.value, r.reason) for r in records] == [
        ("p.user", 0, 7, b'{"id":"a"}', b"\xffraw", "EnvelopeError: bad"),
        ("p.tag", 1, 9, None, b"{}", "UnknownTableError: t"),
    ]


@pytest.mark.integration
def test_listing_a_missing_dlq_is_empty(make_settings: Callable[..., Settings]) -> None:
    """No dead-letter topic yet means no dead letters, not an error."""
    settings = make_settings()
    assert read_dead_letters(settings.kafka_bootstrap, dlq_topic(settings.topic_prefix)) == []


@pytest.mark.integration
def test_acknowledged_dead_letters_are_no_longer_pending(
    make_settings: Callable[..., Settings],
) -> None:
    """After acknowledging (what `dlq replay` does), only newer dead letters are pending."""
    settings = make_settings()
    ensure_topics(admin_client(settings.kafka_bootstrap), settings.topic_prefix, [], 1, 1)
    topic, group = dlq_topic(settings.topic_prefix), f"{settings.group_id}.dlq"
    producer = DeadLetterProducer(settings.kafka_bootstrap, topic)
    producer.send([DeadLetter(MessageRef("p.user", 0, 1, b"a", b"{}", 1), "first")])
    producer.flush()
    first = read_dead_letters(settings.kafka_bootstrap, topic, pending_for=group)
    assert [r.reason for r in first] == ["first"]
    acknowledge_dead_letters(settings.kafka_bootstrap, topic, group, first)
    producer.send([DeadLetter(MessageRef("p.user", 0, 2, b"b", b"{}", 2), "second")])
    producer.flush()
    pending = read_dead_letters(settings.kafka_bootstrap, topic, pending_for=group)
    assert [r.reason for r in pending] == ["second"]
    assert len(read_dead_letters(settings.kafka_bootstrap, topic)) == 2
