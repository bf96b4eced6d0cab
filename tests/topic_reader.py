"""Test helper: read a topic back from the beginning to its current end, directly."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from worker.kafka import consumer_config


def read_topic(
    bootstrap: str, topic: str, timeout: float = 30.0
) -> list[tuple[bytes, bytes | None]]:
    """(key, value) of every message now in `topic`, partition by partition, in offset order."""
    consumer = Consumer(consumer_config(bootstrap, f"reader-{uuid.uuid4().hex[:8]}"))
    try:
        meta = consumer.list_topics(topic, timeout=10)
        partitions = sorted(meta.topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        wanted = {p for p in partitions if ends[p] > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in wanted])
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in partitions}
        deadline = time.monotonic() + timeout
        while wanted and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    continue
                by_partition[msg.partition()].append((msg.key(), msg.value()))
                if msg.offset() + 1 >= ends[msg.partition()]:
                    wanted.discard(msg.partition())
        if wanted:
            raise AssertionError(f"{topic}: partitions {sorted(wanted)} not read to the end")
        return [m for p in partitions for m in by_partition[p]]
    finally:
        consumer.close()
