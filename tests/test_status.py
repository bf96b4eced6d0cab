"""status: the readiness verdict flips with lag, dead letters and verify freshness."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from worker.cli.status_report import DLQ_ACK_GROUP_SUFFIX, collect_status, readiness
from worker.config import Settings
from worker.db import create_target_engine
from worker.envelope import encode_event, new_event
from worker.kafka import admin_client, consumer_config, producer_config
from worker.verify.record import record_run
from worker.verify.runner import TableReport

pytestmark = pytest.mark.integration


def commit_to_end(settings: Settings, group: str, topic: str) -> None:
    """What a consumer does after applying everything: commit each partition's end offset."""
    consumer = Consumer(consumer_config(settings.kafka_bootstrap, group))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p))[1])
            for p in parts
        ]
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


def test_readiness_flips_with_lag_dlq_and_verify(make_settings: Callable[..., Settings]) -> None:
    """Not ready with lag, then with a dead letter, then without a verify; ready at the end."""
    settings = make_settings()
    topic, dlq = f"{settings.topic_prefix}.user", f"{settings.topic_prefix}._dlq"
    admin = admin_client(settings.kafka_bootstrap)
    for future in admin.create_topics([NewTopic(topic, 2, 1), NewTopic(dlq, 1, 1)]).values():
        future.result(timeout=30)
    producer = Producer(producer_config(settings.kafka_bootstrap))
    for i in range(10):
        key, value = encode_event(new_event("user", "upsert", {"id": i}, {"id": i}, ts_ms=i))
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0
    engine = create_target_engine(settings.target_url.get_secret_value(), pool_size=1)
    fresh = timedelta(minutes=5)

    def reasons() -> list[str]:
        return readiness(collect_status(settings, ["user"], engine), verify_max_age=fresh)

    assert any("consumer lag 10" in r for r in reasons())
    commit_to_end(settings, settings.group_id, topic)
    status = collect_status(settings, ["user"], engine)
    assert status.total_lag == 0
    assert status.tables[0].last_applied_ms == 9
    assert reasons() == ["no verify run recorded"]

    producer.produce(dlq, key=b"k", value=b"poison")
    assert producer.flush(30) == 0
    assert "1 dead-lettered event(s) not replayed" in reasons()
    commit_to_end(settings, settings.group_id + DLQ_ACK_GROUP_SUFFIX, dlq)

    record_run(engine, [TableReport("user", processed=1, matching=0, missing=1)])
    assert reasons() == ["last verify found 1 difference(s)"]
    record_run(engine, [TableReport("user", processed=1, matching=1)])
    assert reasons() == []
    engine.dispose()
