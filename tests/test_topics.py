"""ensure_topics: compacted table topics, a DLQ, idempotent, loud about non-compacted topics."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import ConfigResource, NewTopic  # type: ignore[attr-defined]

from worker.kafka import admin_client
from worker.topics import dlq_topic, ensure_topics, topic_for

pytestmark = pytest.mark.integration


def _config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = admin_client(bootstrap)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return {name: entry.value for name, entry in entries.items()}


def test_creates_compacted_table_topics_and_a_delete_policy_dlq(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """Each table topic is compacted with the asked partitions; the DLQ keeps events forever."""
    admin = admin_client(kafka_bootstrap)
    report = ensure_topics(admin, unique_name, ["user", "plan"], partitions=2, replication=1)
    assert report.created == sorted(
        [topic_for(unique_name, "user"), topic_for(unique_name, "plan"), dlq_topic(unique_name)]
    )
    assert _config(kafka_bootstrap, topic_for(unique_name, "user"))["cleanup.policy"] == "compact"
    dlq = _config(kafka_bootstrap, dlq_topic(unique_name))
    assert (dlq["cleanup.policy"], dlq["retention.ms"]) == ("delete", "-1")
    meta = admin.list_topics(topic_for(unique_name, "plan"), timeout=10)
    assert len(meta.topics[topic_for(unique_name, "plan")].partitions) == 2


def test_second_run_creates_nothing(kafka_bootstrap: str, unique_name: str) -> None:
    """Running ensure_topics twice is harmless: the second run only reports existing topics."""
    admin = admin_client(kafka_bootstrap)
    ensure_topics(admin, unique_name, ["user"], partitions=1, replication=1)
    again = ensure_topics(admin, unique_name, ["user"], partitions=1, replication=1)
    assert again.created == []
    assert again.existing == [dlq_topic(unique_name), topic_for(unique_name, "user")]


def test_existing_non_compacted_table_topic_is_reported(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """A pre-existing table topic with cleanup.policy=delete is flagged, not silently used."""
    admin = admin_client(kafka_bootstrap)
    name = topic_for(unique_name, "user")
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(30)
    report = ensure_topics(admin, unique_name, ["user"], partitions=1, replication=1)
    assert report.not_compacted == [name]
