"""Kafka client configuration: the one place librdkafka settings are decided.

Facts behind the choices (DESIGN.md, "Kafka facts"): producers are idempotent with
`acks=all`; consumers never auto-commit; librdkafka logs go to the structlog pipeline.

Group protocol: DESIGN.md names cooperative-sticky on the classic protocol. d1cdc's
consumers use Kafka 4's consumer protocol (KIP-848) by default instead, because it
measured better. After a broker outage longer than the session timeout, the classic
protocol left the old member ids holding their partitions until they expired: 45.2 s
without consuming. The consumer protocol was consuming again 1.1 s after the broker came
back (`ops/bench/bench_broker_outage.py`). `classic` remains a setting, for brokers before
Kafka 4.0.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from worker.logs import kafka_logger

# D1 allows a row of 2 MB. Its event is bigger: JSON escaping, base64 blobs (4/3), and a
# delete's before-image. Producers and table topics take events up to 8 MiB (compressed
# with zstd on the wire); the DLQ takes that plus room for its headers.
MAX_EVENT_BYTES = 8 * 1024 * 1024
DLQ_MAX_BYTES = MAX_EVENT_BYTES + 256 * 1024
EVENT_ROOM = 4096  # librdkafka counts its per-message overhead against message.max.bytes


def _base(bootstrap: str) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "logger": kafka_logger()}


def producer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {
        **_base(bootstrap),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "compression.type": "zstd",
        "message.max.bytes": MAX_EVENT_BYTES,
        "batch.num.messages": 10_000,
        **extra,
    }


# KIP-848's consumer protocol assigns on the broker: these are the broker's business then,
# and librdkafka refuses them in the client configuration.
_CLASSIC_ONLY = ("partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms")


def consumer_config(
    bootstrap: str, group_id: str, *, protocol: str = "classic", **extra: Any
) -> dict[str, Any]:
    """The consumer configuration; `protocol` is the group protocol, "classic" (client-side
    cooperative-sticky assignment) or "consumer" (KIP-848, assigned by the broker)."""
    config = _consumer_config(bootstrap, group_id, **extra)
    if protocol == "consumer":
        config["group.protocol"] = "consumer"
        for key in _CLASSIC_ONLY:
            config.pop(key, None)
    return config


def _consumer_config(bootstrap: str, group_id: str, **extra: Any) -> dict[str, Any]:
    return {
        **_base(bootstrap),
        "group.id": group_id,
        "group.protocol": "classic",
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "max.poll.interval.ms": 300_000,
        "session.timeout.ms": 45_000,
        # A fresh topic matching the subscription regex is picked up quickly.
        "topic.metadata.refresh.interval.ms": 5_000,
        **extra,
    }


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient(_base(bootstrap))


def produce_never_dropping(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    *,
    on_delivery: Any,
    headers: Any = None,
) -> None:
    """Hand one message to librdkafka; a full local queue (`BufferError`: a large batch or
    a replay) is waited out while serving delivery reports, never dropped."""
    while True:
        try:
            producer.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.5)
